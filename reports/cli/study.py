"""``backprop-parity study``: write the backprop study page of one model — one self-contained
HTML file (inline CSS and SVG, no script, nothing fetched) about one training step
(:mod:`reports.study.page`).

The model is resolved by :mod:`reports.cli.model_source` (``--model``, ``--spec``, ``--weights`` or
the default model, spec flags on top: the same flags as ``train``, ``check``, ``explain`` and
``bench``). The batch is :func:`scratch.data.drawn_batch` of ``--batch`` rows from the spec's seed,
with the step-0 dropout masks. ``--out`` is the HTML file (default ``study-<model>.html``),
``--json`` optionally the page's data. Every argument, file and output path is checked before any
framework is imported. Exit status 0 when every intermediate agrees within the tolerance table in
every framework that ran and every step-by-step check of the hard layers agrees with the engine's
own result, 1 when one does not, 2 on bad input.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from reports.cli.exit_codes import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_OK, EXIT_PARITY_FAILED, EXIT_USAGE
from reports.cli.explain import build_model, finite_or_null
from reports.cli.model_source import add_model_arguments
from reports.cli.output_paths import check_outputs
from reports.cli.progress import progress
from reports.cli.threads import add_threads_argument, thread_limited
from reports.json_file import write_json
from reports.study.hard_layers import failed_checks
from reports.study.page import render_study_html, study_data
from scratch.batching import check_batch_statistics, dropout_masks
from scratch.data import drawn_batch
from scratch.errors import DataError
from scratch.weights import write_atomically
from twins import hygiene

EXIT_STATUSES = (EXIT_OK, EXIT_PARITY_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_threads_argument(parser)
    parser.add_argument("--batch", type=int, default=8, help="samples in the batch (default 8)")
    parser.add_argument("--data-dir", metavar="PATH", help="MNIST folder (default: bundled copy)")
    parser.add_argument("--out", metavar="HTML", help="the page (default study-<model>.html)")
    parser.add_argument("--json", metavar="OUT", help="also write the page's data here")
    add_model_arguments(parser)


@thread_limited
def run(args: argparse.Namespace) -> int:
    if args.batch < 1:
        raise DataError(f"--batch must be >= 1 (got {args.batch})")
    name = args.model or (Path(args.spec).stem if args.spec else Path(args.weights).stem if args.weights
                          else None)
    spec, tensors = build_model(args)
    name = name or "default"
    out = Path(args.out or f"study-{name}.html")
    check_outputs({"--out": out, "--json": args.json})
    check_batch_statistics(spec.replace(batch_size=None), args.batch, "--batch")
    x, labels = drawn_batch(spec, args.batch, spec.seed, args.data_dir)

    progress("study", "loading the frameworks")
    hygiene.configure_frameworks(threads=args.threads or None)

    progress("study", f"one step of {len(x)} samples in the engine and each framework")
    started = time.perf_counter()
    data = study_data(name, spec, tensors, x, labels, dropout_masks(spec, 0, len(x)))
    html = render_study_html(data)
    write_atomically(out, html.encode("utf-8"))
    if args.json is not None:
        write_json(args.json, finite_or_null(data))
    failed = [row["name"] for row in data["rows"] if row["ok"] is False] + failed_checks(data["hard"])
    size = len(html.encode("utf-8")) / 1024
    verdict = (f"{len(failed)} beyond the tolerance: {', '.join(failed)}" if failed
               else "every one within tolerance")
    print(f"study page: {out} ({size:.0f} KiB, {time.perf_counter() - started:.1f} s); "
          f"{len(data['rows'])} intermediates and the hard layers' checks, {verdict}")
    return 1 if failed else 0

