"""The engine's training step against the plain NumPy step, side by side: issue 19's figure.

    taskset -c 1 python tools/engine_step_ratio.py                 # batch 64, float32 and float64
    taskset -c 1 python tools/engine_step_ratio.py --rounds 600 --dtypes float32

The bench's ``scratch`` step (``Network.train_step`` through ``ScratchBackend``) and its
``plain-numpy`` step (``reports/bench/plain_numpy.py``) on the default model's net, SGD, the bench's
batch, one BLAS thread. Each round times ``--steps`` steps of each, in a random order, by the
thread's CPU time (``time.thread_time``: a step preempted by another process is not charged for the
wait, which wall-clock medians on a shared machine are); the figure is the median over rounds of
the per-round ratio engine ÷ plain, so both sides see the same machine in every round. Prints one
line per dtype: the median ratio, its interquartile range, and each side's median ms per step.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))       # the checkout, not an install


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--steps", type=int, default=20, help="steps per side per round")
    parser.add_argument("--warmup", type=int, default=100, help="untimed steps per side first")
    parser.add_argument("--seed", type=int, default=0, help="seeds the order within each round")
    args = parser.parse_args()
    if min(args.batch, args.rounds, args.steps) < 1 or args.warmup < 0:
        parser.error("--batch, --rounds and --steps must be at least 1, --warmup at least 0")

    from threadpoolctl import threadpool_limits

    from reports.bench.grid import bench_batch, point_spec
    from reports.bench.steps import make_step
    from scratch import catalog

    order = random.Random(args.seed)
    with threadpool_limits(limits=1):
        for dtype in args.dtypes.split(","):
            spec = point_spec(catalog.spec(catalog.DEFAULT_MODEL), args.batch, dtype, "sgd")
            x, targets, tensors = bench_batch(spec, args.batch)
            steps = {kind: make_step(kind, spec, tensors, x, targets) for kind in ("scratch", "plain-numpy")}
            for step in steps.values():
                for _ in range(args.warmup):
                    step()
            ratios, per_step = [], {kind: [] for kind in steps}
            for _ in range(args.rounds):
                this_round = {}
                for kind in order.sample(list(steps), len(steps)):
                    started = time.thread_time()
                    for _ in range(args.steps):
                        steps[kind]()
                    this_round[kind] = (time.thread_time() - started) / args.steps
                    per_step[kind].append(this_round[kind])
                ratios.append(this_round["scratch"] / this_round["plain-numpy"])
            q1, median, q3 = statistics.quantiles(ratios, n=4)
            print(f"{dtype} batch {args.batch}: engine ÷ plain {median:.3f} (IQR {q1:.3f}–{q3:.3f}); "
                  f"scratch {1e3 * statistics.median(per_step['scratch']):.3f} ms, plain "
                  f"{1e3 * statistics.median(per_step['plain-numpy']):.3f} ms per step, "
                  f"{args.rounds} rounds of {args.steps}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
