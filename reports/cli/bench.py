"""``backprop-parity bench``: time one training step of any catalog model in every backend, side by
side (JAX too, where the optional ``jax`` extra is installed).

The model is resolved as in ``train``, ``check`` and ``explain`` (:mod:`reports.cli.model_source`:
``--model``, ``--spec``, ``--weights`` or the default model, spec flags on top) and timed at grid
points batch × dtype × optimizer (:mod:`reports.bench.grid`: with no model given, the default
model's grid, 4 batches × float32, float64 × SGD, Adam; with one given, the model's own batch,
dtype and optimizer unless ``--batches``, ``--dtypes``, ``--optimizers`` set an axis — a spec flag
and the axis flag that sets the same thing, e.g. ``--dtype`` and ``--dtypes``, are one usage
error). Each backend runs its one public step (:mod:`reports.bench.steps`: the step its
``fit(fused=True)`` runs).

Prints a table per point (median ms per step, interquartile range, ratio to scratch and to the
fastest, GFLOP/s, % of the GEMM peak) and writes the raw figures as JSON (``--json``) for the
report, one shape whatever the model (``reports.schema.BENCH``): the run's settings and one row per
timed point (model, batch, dtype, optimizer, every backend's figures). ``--profile`` adds the
engine's step layer by layer to each row (``profile``: :mod:`reports.bench.profile`; always on for
a model that is not a dense stack). ``--memory`` adds the peak memory of a step per backend to the
rows at the largest batch (``memory``; a fresh process each); ``--with-suite`` and
``--with-report`` add the wall time of the default parity suite and of the default report.
Loading the frameworks, the GEMM peak and each timed point are announced by one line on stderr
first (:mod:`reports.cli.progress`); stdout's table keeps its format.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from threadpoolctl import threadpool_info, threadpool_limits

from reports.bench import grid, profile
from reports.bench.jax_threads import configure_jax
from reports.bench.steps import available_kinds, kinds_for, spec_for_kind
from reports.bench.timing import gemm_peak, step_flops, time_interleaved
from reports.cli.args import names, non_negative_float, positive_int, positive_ints
from reports.cli.exit_codes import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError
from reports.cli.model_source import add_model_arguments, resolve, source_name
from reports.cli.output_paths import check_outputs
from reports.cli.progress import progress
from reports.json_file import write_json
from reports.schema import BENCH_FORMAT
from scratch.errors import BackendError
from twins.hygiene import configure_frameworks

EXIT_STATUSES = (EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE)
# grid axis flag -> the spec flag (argparse dest) that sets the same thing
MEMORY_FIGURES = ("rss_before_mib", "peak_mib", "step_extra_mib")   # per backend, from reports.bench.memory
AXES = {"batches": "batch_size", "dtypes": "dtype", "optimizers": "optimizer"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batches", type=positive_ints, default=None,
                        help=f"comma-separated batch sizes, each at most the {grid.MNIST_TRAIN_SAMPLES} "
                             f"MNIST training samples (default: {','.join(map(str, grid.BATCHES))} for the "
                             "default model, else the model's batch size)")
    parser.add_argument("--dtypes", type=names(grid.DTYPES), default=None,
                        help=f"comma-separated, from {', '.join(grid.DTYPES)} (default: both for the default "
                             "model, else the model's)")
    parser.add_argument("--optimizers", type=names(grid.OPTIMIZERS), default=None,
                        help=f"comma-separated, from {', '.join(grid.OPTIMIZERS)} (default: both for the "
                             "default model, else the model's own optimizer)")
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
    parser.add_argument("--profile", action="store_true",
                        help="also time the engine's step layer by layer (always on for a model that is "
                             "not a dense stack)")
    parser.add_argument("--memory", action="store_true",
                        help="also measure a step's peak memory per backend")
    parser.add_argument("--with-suite", action="store_true", help="also time the default parity suite")
    parser.add_argument("--with-report", action="store_true", help="also time the default report")
    add_model_arguments(parser)


def validate(args: argparse.Namespace):
    """Every check that needs no framework: the model, the axes (filled in), batch sizes within
    the data, a writable --json. Returns the resolved :class:`~reports.cli.model_source.ModelSource`."""
    for axis, dest in AXES.items():
        if getattr(args, axis) is not None and getattr(args, dest) is not None:
            raise UsageError(f"--{axis} and --{dest.replace('_', '-')} both set the bench's "
                             f"{axis[:-1].replace('batche', 'batch')}; give one")
    source = resolve(args)
    spec = source.spec
    chosen = any(getattr(args, flag, None) is not None for flag in ("model", "spec", "weights"))
    defaults = ((grid.BATCHES, grid.DTYPES, grid.OPTIMIZERS) if not chosen else
                ([spec.batch_size or source.dataset.train_rows], [spec.dtype], [spec.optimizer.name]))
    args.batches, args.dtypes, args.optimizers = (
        list(default) if given is None else given
        for given, default in zip((args.batches, args.dtypes, args.optimizers), defaults, strict=True))
    if args.batch_size is not None:
        args.batches = [spec.batch_size or source.dataset.train_rows]
    too_big = [batch for batch in args.batches if batch > grid.MNIST_TRAIN_SAMPLES]
    if too_big:
        raise UsageError(f"--batches {too_big[0]}: MNIST has only {grid.MNIST_TRAIN_SAMPLES} training "
                         f"samples; a batch is at most {grid.MNIST_TRAIN_SAMPLES}")
    for optimizer in args.optimizers:                  # an unknown name is one error now, not mid-run
        grid.point_spec(spec, args.batches[0], args.dtypes[0], optimizer)
    check_outputs({"--json": args.json})
    return source


def run(args: argparse.Namespace) -> int:
    source = validate(args)
    spec = source.spec
    parameters = None if source.loaded is None else source.loaded.tensors
    threads = args.threads or os.cpu_count()
    progress("bench", "loading the frameworks")
    settings = configure_frameworks(threads=threads)
    kinds = available_kinds()
    if "jax" in kinds:
        settings.update(configure_jax(threads=threads))
    name = source_name(args)
    results = {"format": BENCH_FORMAT, "threads": threads, "settle_s": args.settle, "frameworks": settings,
               "peak_gflops": {}, "specs": {name: spec.to_dict()}, "rows": []}
    with threadpool_limits(limits=threads):
        fields = ("internal_api", "version", "architecture", "num_threads")
        results["blas"] = [{k: pool.get(k) for k in fields} for pool in threadpool_info()]   # as timed
        for dtype in args.dtypes:
            progress("bench", f"the GEMM peak, {dtype}")
            results["peak_gflops"][dtype] = gemm_peak(dtype, size=args.peak_size)
            peak = max(results["peak_gflops"][dtype].values())
            print(f"GEMM peak {dtype}: " + ", ".join(f"{k} {v:.1f}" for k, v in
                                                     results["peak_gflops"][dtype].items()) + " GFLOP/s")
            for optimizer in args.optimizers:
                for batch in args.batches:
                    point = grid.point_spec(spec, batch, dtype, optimizer)
                    progress("bench", f"timing batch {batch}, {dtype}, {optimizer} in every backend")
                    steps = {}
                    for kind in kinds_for(kinds, point):
                        try:
                            steps[kind] = grid.build_step(kind, point, parameters)
                        except BackendError as error:     # a twin that cannot express the spec
                            progress("bench", f"{kind} cannot express this spec, skipped — {error}")
                    row = {"model": name, **timed_row(point, steps, args, peak)}
                    if args.profile or not spec.is_mlp:
                        progress("bench", f"the engine's step layer by layer, batch {batch}")
                        row["profile"] = profile.profile_row(point, batch, repeats=max(3, args.rounds))
                    results["rows"].append(row)
                    _print_row(row, source.origin, point)
    _save(results, args.json)                          # the rows are kept even if a later part fails
    if args.memory:
        _memory(kinds, spec, args, results["rows"])
        _save(results, args.json)
    if args.with_suite:
        suite = ["-m", "pytest", "parity_tests", "-q", "-m", "not slow", "-p", "no:cacheprovider"]
        results["suite_wall_s"] = _wall(suite, "the default parity suite")
        print(f"default parity suite: {results['suite_wall_s']:.1f} s wall")
        _save(results, args.json)
    if args.with_report:
        with tempfile.TemporaryDirectory() as out:
            results["report_wall_s"] = _wall(["-m", "reports", "report", "--out", out], "the default report")
        print(f"default report: {results['report_wall_s']:.1f} s wall")
        _save(results, args.json)
    return 0


def timed_row(point, steps: dict, args: argparse.Namespace, peak: float) -> dict:
    """Every step of ``steps`` timed interleaved; per backend the ratios and throughput."""
    timing = time_interleaved(steps, rounds=args.rounds, settle=args.settle)
    flops = step_flops(point, point.batch_size)
    base = timing["scratch"]["median_s"]
    fastest = min(t["median_s"] for t in timing.values())
    for t in timing.values():
        t["ratio_to_scratch"] = t["median_s"] / base
        t["ratio_to_fastest"] = t["median_s"] / fastest
        t["gflops"] = flops / t["median_s"] / 1e9
        t["percent_of_peak"] = 100 * t["gflops"] / peak
    return {"batch": point.batch_size, "dtype": point.dtype, "optimizer": point.optimizer.name,
            "flops": flops, "backends": timing}


def _print_row(row, origin: str, point) -> None:
    stack = point.describe_stack() if not point.is_mlp else "-".join(map(str, point.layer_sizes))
    print(f"\n[{origin}: {stack}] "
          f"batch {row['batch']}, {row['dtype']}, {row['optimizer']} ({row['flops'] / 1e9:.3f} GFLOP/step)")
    print(f"  {'backend':<12}{'median ms':>11}{'IQR ms':>21}{'× scratch':>11}{'× fastest':>11}{'GFLOP/s':>9}"
          f"{'% peak':>8}")
    for name, t in row["backends"].items():
        iqr = f"{1e3 * t['q1_s']:.3f}–{1e3 * t['q3_s']:.3f}"
        print(f"  {name:<12}{1e3 * t['median_s']:>11.3f}{iqr:>21}{t['ratio_to_scratch']:>11.2f}"
              f"{t['ratio_to_fastest']:>11.2f}{t['gflops']:>9.1f}{t['percent_of_peak']:>8.1f}")
    if "profile" in row:
        profile_s = row["profile"]["engine_profile_s"]
        print(f"  engine step, by part (median ms, % of the step {1e3 * profile_s['step']:.3f} ms):")
        for part, seconds in profile_s.items():
            if part != "step":
                print(f"    {part:<40}{1e3 * seconds:>9.3f}{100 * seconds / profile_s['step']:>7.1f} %")
        for p in row["profile"]["im2col"]:
            print(f"  im2col P, layer {p['layer']}: {p['rows']} × {p['cols']} × {row['dtype']} = "
                  f"{p['bytes'] / 2 ** 20:.1f} MiB")
        peak = row["profile"]["engine_step_tracemalloc_peak_bytes"]
        print(f"  tracemalloc peak of one engine step: {peak / 2 ** 20:.1f} MiB")


def _memory(kinds, spec, args, rows: list[dict]) -> None:
    """A step's peak memory at the largest batch, per dtype, optimizer and backend (a fresh process
    each), added to the row of that point as ``memory``: {backend: MiB figures}."""
    batch = max(args.batches)
    for row in rows:
        if row["batch"] != batch:
            continue
        point = grid.point_spec(spec, batch, row["dtype"], row["optimizer"])
        row["memory"] = {}
        for kind in kinds_for(kinds, point):
            done = subprocess.run([sys.executable, "-m", "reports.bench.memory", kind,
                                   spec_for_kind(kind, point).to_json()],
                                  capture_output=True, text=True, check=True)
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            row["memory"][kind] = {key: figures[key] for key in MEMORY_FIGURES}
            print(f"  memory {kind:<12}{row['dtype']} {row['optimizer']}: peak "
                  f"{figures['peak_mib']:.0f} MiB, step adds {figures['step_extra_mib']:.0f} MiB")


def _save(results: dict, path) -> None:
    """``results`` as the report's schema reads them (``reports.schema.BENCH``)."""
    if path:
        write_json(path, results)
        print(f"wrote {path}")


def _wall(arguments, what: str) -> float:
    """Wall seconds of ``python arguments…`` run from the current folder (the checkout, which
    holds ``parity_tests``); a failing run is an error, not a time."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *arguments], check=False, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        raise BackendError(f"{what} failed (exit {done.returncode}) after {wall:.0f} s, so its time is "
                           "not recorded:\n  " + "\n  ".join(tail))
    return wall
