"""``backprop-parity bench``: time one training step in every backend, side by side (JAX too,
where the optional ``jax`` extra is installed).

Prints a table (median ms per step, interquartile range, ratio to scratch, GFLOP/s, % of the
GEMM peak) and writes the raw figures as JSON (``--json``) for the report. ``--memory`` adds the
peak memory of a full-batch step per backend (fresh process each); ``--with-suite`` and
``--with-report`` add the wall time of the default parity suite and of the default report.

``--model lenet5`` times the catalog's LeNet-5 instead (:mod:`reports.bench.cnn`: float32, SGD,
batches 64 and 256 by default) in scratch, torch, tf.function and JAX, and adds where the
engine's step goes (its layer calls timed one by one) and im2col's memory; its JSON has a
``cnn`` list instead of ``grid`` (the report's benchmark section reads the MLP grid only).
Loading the frameworks, the GEMM peak and each timed batch are announced by one line on stderr
first (:mod:`reports.cli.progress`); stdout's table keeps its format.
"""

from __future__ import annotations

import argparse

from reports.cli.args import names, non_negative_float, positive_int, positive_ints
from reports.cli.exit_codes import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError
from reports.cli.output_paths import check_outputs

EXIT_STATUSES = (EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reports.bench import cnn
    from reports.bench.grid import BATCHES, DTYPES, MNIST_TRAIN_SAMPLES, MODEL, OPTIMIZERS

    parser.add_argument("--model", choices=(MODEL, cnn.MODEL), default=MODEL,
                        help=f"the catalog model timed: {MODEL} (the MLP grid, default) or {cnn.MODEL} "
                             f"(the CNN step: {cnn.DTYPE}, sgd only)")
    parser.add_argument("--batches", type=positive_ints, default=None,
                        help=f"comma-separated batch sizes, each at most the {MNIST_TRAIN_SAMPLES} MNIST "
                             f"training samples (default {','.join(map(str, BATCHES))}; "
                             f"{','.join(map(str, cnn.BATCHES))} for {cnn.MODEL})")
    parser.add_argument("--dtypes", type=names(DTYPES), default=None,
                        help=f"comma-separated, from {', '.join(DTYPES)} (default: both; {cnn.MODEL}: "
                             f"{cnn.DTYPE} only)")
    parser.add_argument("--optimizers", type=names(OPTIMIZERS), default=None,
                        help=f"comma-separated, from {', '.join(OPTIMIZERS)}: the optimizers the bench "
                             f"implements (default: both; {cnn.MODEL}: sgd only)")
    parser.add_argument("--rounds", type=positive_int, default=15,
                        help="interleaved timing rounds, >= 1 (default 15)")
    parser.add_argument("--settle", type=non_negative_float, default=0.25,
                        help="seconds of sleep before each timed block, so the previous backend's "
                             "threads stop spinning (default 0.25)")
    parser.add_argument("--peak-size", type=positive_int, default=2048,
                        help="n of the square n × n product that measures the GEMM peak (default 2048)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="threads for every library, >= 1 (default: the number of cores)")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.add_argument("--memory", action="store_true", help="also measure full-batch peak memory")
    parser.add_argument("--with-suite", action="store_true", help="also time the default parity suite")
    parser.add_argument("--with-report", action="store_true", help="also time the default report")


def validate(args: argparse.Namespace) -> None:
    """Every check that needs no framework: the model's dtypes and optimizers, batch sizes within
    the data, a writable --json; fills in the model's defaults."""
    from reports.bench import cnn
    from reports.bench.grid import BATCHES, DTYPES, MNIST_TRAIN_SAMPLES, OPTIMIZERS

    if args.model == cnn.MODEL:
        for flag, given, allowed in (("--dtypes", args.dtypes, [cnn.DTYPE]), ("--optimizers", args.optimizers,
                                                                                ["sgd"])):
            if given not in (None, allowed):
                raise UsageError(f"{flag} {','.join(given)}: --model {cnn.MODEL} times {allowed[0]} only")
        for flag in ("memory", "with_suite", "with_report"):
            if getattr(args, flag):
                raise UsageError(f"--{flag.replace('_', '-')} is an option of the MLP grid, not of "
                                 f"--model {cnn.MODEL} (which always reports im2col's memory)")
        defaults = (cnn.BATCHES, [cnn.DTYPE], ["sgd"])
    else:
        defaults = (BATCHES, DTYPES, OPTIMIZERS)
    args.batches, args.dtypes, args.optimizers = (
        list(default) if given is None else given
        for given, default in zip((args.batches, args.dtypes, args.optimizers), defaults, strict=True))

    too_big = [batch for batch in args.batches if batch > MNIST_TRAIN_SAMPLES]
    if too_big:
        raise UsageError(f"--batches {too_big[0]}: MNIST has only {MNIST_TRAIN_SAMPLES} training samples; "
                         f"a batch is at most {MNIST_TRAIN_SAMPLES}")
    check_outputs({"--json": args.json})


def run(args: argparse.Namespace) -> int:
    import os

    validate(args)
    threads = args.threads or os.cpu_count()
    from reports.cli.progress import progress
    from twins.hygiene import configure_frameworks

    progress("bench", "loading the frameworks")
    settings = configure_frameworks(threads=threads)

    if args.model == "lenet5":                         # reports.bench.cnn.MODEL (its imports wait)
        return _run_cnn(args, threads, settings)

    from threadpoolctl import threadpool_info, threadpool_limits

    from reports.bench.grid import LAYERS, build_step
    from reports.bench.steps import available_kinds, kinds_for
    from reports.bench.timing import gemm_peak, step_flops, time_interleaved

    kinds = available_kinds()
    if "jax" in kinds:
        from reports.bench.jax_step import configure_jax

        settings.update(configure_jax(threads=threads))

    batches, dtypes, optimizers = args.batches, args.dtypes, args.optimizers
    results = {"layers": list(LAYERS), "threads": threads, "settle_s": args.settle, "frameworks": settings,
               "peak_gflops": {}, "grid": []}
    with threadpool_limits(limits=threads):
        fields = ("internal_api", "version", "architecture", "num_threads")
        results["blas"] = [{k: pool.get(k) for k in fields} for pool in threadpool_info()]   # as timed
        for dtype in dtypes:
            progress("bench", f"the GEMM peak, {dtype}")
            results["peak_gflops"][dtype] = gemm_peak(dtype, size=args.peak_size)
            peak = max(results["peak_gflops"][dtype].values())
            print(f"GEMM peak {dtype}: " + ", ".join(f"{k} {v:.1f}" for k, v in
                                                     results["peak_gflops"][dtype].items()) + " GFLOP/s")
            for optimizer in optimizers:
                for batch in batches:
                    progress("bench", f"timing batch {batch}, {dtype}, {optimizer} in every backend")
                    steps = {kind: build_step(kind, batch, dtype, optimizer)
                             for kind in kinds_for(kinds, optimizer)}
                    timing = time_interleaved(steps, rounds=args.rounds, settle=args.settle)
                    flops = step_flops(LAYERS, batch)
                    row = {"batch": batch, "dtype": dtype, "optimizer": optimizer, "flops": flops,
                           "backends": timing}
                    base = timing["scratch"]["median_s"]
                    for t in timing.values():
                        t["ratio_to_scratch"] = t["median_s"] / base
                        t["gflops"] = flops / t["median_s"] / 1e9
                        t["percent_of_peak"] = 100 * t["gflops"] / peak
                    results["grid"].append(row)
                    _print_row(row)
    _save(results, args.json)                          # the grid is kept even if a later part fails
    if args.memory:
        results["memory"] = _memory(kinds, dtypes, optimizers)
        _save(results, args.json)
    if args.with_suite:
        suite = ["-m", "pytest", "parity_tests", "-q", "-m", "not slow", "-p", "no:cacheprovider"]
        results["suite_wall_s"] = _wall(suite, "the default parity suite")
        print(f"default parity suite: {results['suite_wall_s']:.1f} s wall")
        _save(results, args.json)
    if args.with_report:
        import tempfile
        with tempfile.TemporaryDirectory() as out:
            results["report_wall_s"] = _wall(["-m", "reports", "report", "--out", out], "the default report")
        print(f"default report: {results['report_wall_s']:.1f} s wall")
        _save(results, args.json)
    return 0


def _run_cnn(args: argparse.Namespace, threads: int, settings: dict) -> int:
    """Every available backend's lenet5 step, interleaved, per batch; then the engine's profile
    and im2col's memory at each batch."""
    from threadpoolctl import threadpool_limits

    from reports.bench import cnn
    from reports.bench.timing import time_interleaved
    from reports.cli.progress import progress

    kinds = cnn.available_kinds()
    if "jax" in kinds:
        from reports.bench.jax_step import configure_jax

        settings.update(configure_jax(threads=threads))
    results = {"model": cnn.MODEL, "threads": threads, "settle_s": args.settle, "frameworks": settings,
               "cnn": []}
    with threadpool_limits(limits=threads):
        for batch in args.batches:
            progress("bench", f"timing {cnn.MODEL}, batch {batch}, in every backend")
            spec = cnn.spec_for(batch)
            x, targets, weights, biases = cnn.batch_data(spec, batch)
            steps = {kind: cnn.make_step(kind, spec, weights, biases, x, targets) for kind in kinds}
            timing = time_interleaved(steps, rounds=args.rounds, settle=args.settle)
            fastest = min(t["median_s"] for t in timing.values())
            for t in timing.values():
                t["ratio_to_fastest"] = t["median_s"] / fastest
            row = {"batch": batch, "dtype": cnn.DTYPE, "optimizer": "sgd", "backends": timing,
                   "engine_profile_s": cnn.engine_profile(spec, batch, repeats=max(3, args.rounds)),
                   "im2col": cnn.patches_bytes(spec, batch),
                   "engine_step_tracemalloc_peak_bytes": cnn.step_peak_bytes(spec, batch)}
            results["cnn"].append(row)
            _print_cnn_row(row)
    _save(results, args.json)
    return 0


def _print_cnn_row(row) -> None:
    from reports.bench import cnn

    print(f"\n[{cnn.MODEL} without dropout] batch {row['batch']}, {row['dtype']}, {row['optimizer']}")
    print(f"  {'backend':<12}{'median ms':>11}{'IQR ms':>16}{'× fastest':>11}")
    for name, t in row["backends"].items():
        iqr = f"{1e3 * t['q1_s']:.3f}–{1e3 * t['q3_s']:.3f}"
        print(f"  {name:<12}{1e3 * t['median_s']:>11.3f}{iqr:>16}{t['ratio_to_fastest']:>11.2f}")
    profile = row["engine_profile_s"]
    print(f"  engine step, by part (median ms, % of the step {1e3 * profile['step']:.3f} ms):")
    for part, seconds in profile.items():
        if part != "step":
            print(f"    {part:<40}{1e3 * seconds:>9.3f}{100 * seconds / profile['step']:>7.1f} %")
    for p in row["im2col"]:
        print(f"  im2col P, layer {p['layer']}: {p['rows']} × {p['cols']} × {row['dtype']} = "
              f"{p['bytes'] / 2 ** 20:.1f} MiB")
    peak = row["engine_step_tracemalloc_peak_bytes"]
    print(f"  tracemalloc peak of one engine step: {peak / 2 ** 20:.1f} MiB")


def _print_row(row) -> None:
    from reports.bench.grid import LAYERS

    header = (f"\n[{'-'.join(map(str, LAYERS))}] batch {row['batch']}, {row['dtype']}, {row['optimizer']} "
              f"({row['flops'] / 1e9:.3f} GFLOP/step)")
    print(header)
    print(f"  {'backend':<12}{'median ms':>11}{'IQR ms':>16}{'× scratch':>11}{'GFLOP/s':>9}{'% peak':>8}")
    for name, t in row["backends"].items():
        iqr = f"{1e3 * t['q1_s']:.3f}–{1e3 * t['q3_s']:.3f}"
        print(f"  {name:<12}{1e3 * t['median_s']:>11.3f}{iqr:>16}{t['ratio_to_scratch']:>11.2f}"
              f"{t['gflops']:>9.1f}{t['percent_of_peak']:>8.1f}")


def _memory(kinds, dtypes, optimizers):
    import json
    import subprocess
    import sys

    from reports.bench.steps import kinds_for

    rows = []
    for dtype in dtypes:
        for optimizer in optimizers:
            for kind in kinds_for(kinds, optimizer):
                done = subprocess.run([sys.executable, "-m", "reports.bench.memory", kind, dtype, optimizer],
                                      capture_output=True, text=True, check=True)
                row = json.loads(done.stdout.strip().splitlines()[-1])
                row.update(dtype=dtype, optimizer=optimizer)
                rows.append(row)
                print(f"  memory {kind:<12}{dtype} {optimizer}: peak {row['peak_mib']:.0f} MiB, "
                      f"step adds {row['step_extra_mib']:.0f} MiB")
    return rows


def _save(results: dict, path) -> None:
    if path:
        from reports.json_file import write_json

        write_json(path, results)
        print(f"wrote {path}")


def _wall(arguments, what: str) -> float:
    """Wall seconds of ``python arguments…`` run from the current folder (the checkout, which
    holds ``parity_tests``); a failing run is an error, not a time."""
    import subprocess
    import sys
    import time

    from scratch.errors import BackendError

    start = time.perf_counter()
    done = subprocess.run([sys.executable, *arguments], check=False, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        raise BackendError(f"{what} failed (exit {done.returncode}) after {wall:.0f} s, so its time is "
                           "not recorded:\n  " + "\n  ".join(tail))
    return wall
