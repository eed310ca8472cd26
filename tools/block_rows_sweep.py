"""Time the NumPy engine's training step at several ``scratch.model.BLOCK_ROWS`` values, side by
side, to back (or revise) the value the engine uses.

    python tools/block_rows_sweep.py                               # 8192 and 60000 rows, both dtypes
    python tools/block_rows_sweep.py --batches 8192 --blocks 256,512,1024,0 --threads 1

Block 0 means "no blocking" (the whole batch in one forward and backward pass). The grid's
net (the catalog's seed-002), SGD, on the first ``batch`` MNIST training images; the candidates are timed
interleaved (A B C A B C …) after a warm-up, like ``backprop-parity bench``, so a busy machine
slows them alike. Prints the median ms per step and the ratio to the current BLOCK_ROWS.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))       # the checkout, not an install


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="8192,60000")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--blocks", default="256,512,1024,2048,0", help="rows per block; 0 = whole batch")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    from threadpoolctl import threadpool_limits

    import scratch.model as engine
    from reports.bench.grid import bench_batch, point_spec
    from scratch import catalog
    from scratch.optimizers import make_optimizer

    current = engine.BLOCK_ROWS
    blocks = [int(b) for b in args.blocks.split(",")]
    with threadpool_limits(limits=args.threads):
        for dtype in args.dtypes.split(","):
            for batch in (int(b) for b in args.batches.split(",")):
                spec = point_spec(catalog.spec(catalog.DEFAULT_MODEL), batch, dtype, "sgd")
                x, targets, tensors = bench_batch(spec, batch)
                model = engine.Network(spec, tensors=tensors)
                optimizer = make_optimizer(spec.optimizer)
                samples = {block: [] for block in blocks}
                for round_ in range(args.rounds + 1):                # round 0 is the warm-up
                    for block in blocks:
                        engine.BLOCK_ROWS = block or batch
                        start = time.perf_counter()
                        model.train_step(x, targets, optimizer)
                        if round_:
                            samples[block].append(time.perf_counter() - start)
                engine.BLOCK_ROWS = current
                base = statistics.median(samples.get(current, samples[blocks[0]]))
                cells = [f"{block or 'whole'}: {1e3 * statistics.median(s):.1f} ms "
                         f"({statistics.median(s) / base:.2f})" for block, s in samples.items()]
                print(f"{dtype} batch {batch}, {args.threads} thread(s): " + ", ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
