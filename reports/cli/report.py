"""``backprop-parity report``: run the comparison scenarios across every installed backend and
write the report folder:

    results.json     the raw results (schema: ``reports.schema``); the report is a pure function of it
    report.html      self-contained HTML (the PNGs beside it, linked relatively)
    report.md        the Markdown summary
    *.png            the plots (``reports.render.plots``)

``--quick`` runs a tiny scenario set (seconds; used by the tests), the default a few minutes on
2 cores with the seeds' MNIST runs on a fixed training subset (labelled REDUCED), ``--full`` the
seeds' real settings (an hour or more: 800 full-batch steps on 60,000 samples in each backend;
``docs/report.md``). ``--from-json FILE`` re-renders a saved results file
without running anything. ``--bench FILE`` adds a Benchmark section from the JSON that
``backprop-parity bench --json FILE`` wrote, whatever the model (checked first, so a bad file fails
before anything runs); it may be given once per model benchmarked. The files are stored in
results.json (``bench``, a list), so ``--from-json`` renders them again.

The parity, curves, divergence and explain scenarios run the model of the model flags, resolved as
in ``train``, ``check``, ``explain`` and ``bench`` (:mod:`reports.cli.model_source`: ``--model``,
``--spec`` or ``--weights``, the spec flags on top), on its data set (a catalog model's own, else
the one its input fits: 784 inputs MNIST, 2 XOR); with none of them, the one default model of every command,
:data:`scratch.catalog.DEFAULT_MODEL` (``mnist-default``). Each scenario still sets what it varies
(the dtypes, the optimizers of the curves, plain SGD for the divergence, the batch and samples);
``lenet5``'s rows, the seeds, the variants and the conventions keep their own models. A catalog
model keeps its name in results.json and the verdict (spec flags on top are in its ``command`` and
each entry's spec); a spec or weight file's model is named by
the file's stem (``--spec tiny.json``: ``tiny``), with ``-file`` added where the stem is a catalog
name. ``--from-json`` runs nothing, so a model flag with it is an error (exit status 2).

``--out`` (its nearest existing folder must be writable), ``--threads``, ``--data-dir``, the model
and every input file are checked before any framework is imported. Everything is rendered in memory
first and each file is written to a temporary name and renamed, so an error never leaves a
half-written report.

The report's verdict line (``reports.verdict.report``) is printed on stdout once the files are
written, and the exit status follows it: 0 when every judged comparison is within tolerance,
1 (as ``check``) when one is not — section 4's seed-faithful variants, wrong on purpose, are not
judged. ``--from-json`` judges the saved results the same way, so a re-rendered FAIL exits 1 too.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import time
from pathlib import Path

from reports.cli.exit_codes import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARITY_FAILED,
    EXIT_USAGE,
)
from reports.cli.model_source import (
    ModelSource,
    add_model_arguments,
    given_flags,
    resolve,
    source_arguments,
    source_name,
)
from reports.cli.output_paths import check_outputs
from reports.cli.threads import limit_threads

EXIT_STATUSES = (EXIT_OK, EXIT_PARITY_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE)
FILES = {"json": "results.json", "html": "report.html", "markdown": "report.md"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", metavar="DIR", default="report", help="output folder (default: ./report)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a tiny scenario set, well under a minute")
    size.add_argument("--full", action="store_true",
                      help="the seeds' real settings (60,000 samples, 800 full-batch steps): an hour or more")
    size.add_argument("--from-json", metavar="FILE", help="re-render a saved results.json; runs nothing")
    parser.add_argument("--bench", metavar="FILE", action="append",
                        help="add a Benchmark section from the JSON of `backprop-parity bench --json FILE`; "
                             "repeat it for more models (one file per model)")
    parser.add_argument("--data-dir", metavar="PATH",
                        help="MNIST folder (default: $BACKPROP_PARITY_DATA, else the bundled copy)")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="BLAS/OpenMP and torch threads while the scenarios run (default 1; 0 = each "
                             "library's own default). Small-batch steps are dominated by thread hand-offs: "
                             "on a busy 2-core machine two threads per library made steps 10-50x slower")
    add_model_arguments(parser)
    parser.epilog = ("The model flags pick the model of the parity, curves, divergence and explain "
                     "scenarios, on the data set its input fits; lenet5's rows, the seeds, variants and "
                     "conventions keep their own models.")


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    out = Path(args.out)
    check_outputs({"--out": out}, folders=("--out",))
    for name in FILES.values():                   # each file of the report: missing or a regular file
        check_outputs({"--out": out / name})
    if args.threads < 0:
        from scratch.errors import DataError

        raise DataError(f"--threads must be >= 0 (0 = library defaults), got {args.threads}")
    if args.data_dir is not None:
        from scratch.datasets.mnist import resolve_data_dir

        resolve_data_dir(args.data_dir)
    model = None if args.from_json else slot_model(args)
    if args.from_json:
        refuse_model_flags(args)
    benches = load_benches(args.bench or [])
    if args.from_json:
        results = load_results(args.from_json)
    else:
        results = run_scenarios(args, model)
    if benches:
        results["bench"] = benches
    from reports.verdict.report import report_verdict

    verdict = report_verdict(results)
    written = write_report(results, out)
    print(f"report written to {out}/: " + ", ".join(path.name for path in written))
    print(f"open {out / FILES['html']} (plots beside it); summary in {out / FILES['markdown']}")
    print(f"total wall time {time.perf_counter() - started:.1f} s"
          + ("" if args.from_json else f" (scenarios {results['wall_time_s']:.1f} s)"))
    print(verdict["line"])
    return EXIT_OK if verdict["ok"] else EXIT_PARITY_FAILED


def refuse_model_flags(args: argparse.Namespace) -> None:
    """``--from-json`` runs nothing: a model flag (source or spec flag) with it is a UsageError."""
    from reports.cli.exit_codes import UsageError

    flags = [f"--{dest}" for dest in ("model", "spec", "weights") if getattr(args, dest) is not None]
    flags += [f"--{dest.replace('_', '-')}" for dest in given_flags(args)]
    if flags:
        raise UsageError(f"{', '.join(flags)}: --from-json runs nothing, so it takes no model "
                         f"(drop {', '.join(flags)})")


def slot_model(args: argparse.Namespace):
    """The model of the report's model slot (:class:`~reports.scenarios.common.ScenarioModel`),
    from the model flags (the one default without them): its spec, the data set its input fits,
    a weight file's parameters, and its name (the catalog's, else the file's stem). A spec that
    fits no data set is a SpecError (exit status 2), before any framework is imported."""
    from reports.scenarios.common import ScenarioModel
    from scratch.data import check_fits
    from scratch.errors import SpecError

    source = resolve(args)
    check_data_fits(source)
    try:
        check_fits(source.spec, source.dataset.name)
    except SpecError as error:
        raise SpecError(f"{source.origin}: {error}") from None
    tensors = None if source.loaded is None else source.loaded.tensors
    return ScenarioModel(source_name(args), source.spec, source.dataset.name, tensors)


def check_data_fits(source: ModelSource) -> None:
    """Raise SpecError unless the model's input fits a data set (the scenarios train on one)."""
    from scratch.catalog import DATASET_FACTS
    from scratch.errors import SpecError

    features = math.prod(source.spec.input_shape)
    if all(facts.features != features for facts in DATASET_FACTS.values()):
        fits = ", ".join(f"{name} {facts.features}" for name, facts in DATASET_FACTS.items())
        raise SpecError(f"{source.origin}: its input has {features} numbers, but the report's scenarios "
                        f"train on a data set, and none has that many features ({fits})")


def run_scenarios(args: argparse.Namespace, model) -> dict:
    from twins.hygiene import configure_frameworks

    hygiene = configure_frameworks()

    from reports.scenarios.common import Context
    from reports.scenarios.suite import PROFILES, run_all, with_model

    mode = "quick" if args.quick else "full" if args.full else "default"
    profile = with_model(PROFILES[mode], model)
    ctx = Context(data_dir=args.data_dir, progress=_isatty(sys.stderr))
    for name, why in ctx.skipped.items():
        print(f"backend {name}: skipped, {why}", file=sys.stderr)
    command = " ".join(["backprop-parity", "report", *(["--" + mode] if mode != "default" else []),
                        *source_arguments(args), f"--threads {args.threads}"])
    with limit_threads(args.threads):
        return run_all(profile, ctx, hygiene, command=command)


def load_results(path) -> dict:
    """A saved results.json, checked against the schema."""
    from reports.schema import validate

    results = _read_json(path)
    validate(results, source=str(path))
    return results


def load_benches(paths) -> list[dict]:
    """The ``backprop-parity bench --json`` files, each checked against ``reports.schema.BENCH``
    (results.json's ``bench``, in order); two files that time one model are refused."""
    from reports.schema import validate_bench
    from scratch.errors import DataError

    benches, sources = [], {}
    for path in paths:
        bench = _read_json(path)
        validate_bench(bench, str(path))
        for model in bench["specs"]:
            if model in sources:
                raise DataError(f"--bench {path}: a second bench file of model {model!r} (the first: "
                                f"{sources[model]})")
            sources[model] = path
        benches.append(bench)
    return benches


def _read_json(path):
    """The JSON value in the file at ``path``; NaN and ±Infinity are refused (results.json
    writes non-finite values as null)."""
    import json

    from scratch.errors import DataError

    def refuse(constant: str):
        raise DataError(f"{path}: {constant} in the JSON (expected finite numbers)")

    from reports.cli.text_file import read_text

    text = read_text(path, DataError)
    try:
        return json.loads(text, parse_constant=refuse)
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: malformed JSON ({error})") from None


def render(results: dict) -> dict[str, bytes]:
    """Every file of the report, name → bytes (PNGs only where matplotlib is installed)."""
    from reports.json_file import json_bytes
    from reports.render.html import render_html
    from reports.render.markdown import render_markdown

    files: dict[str, bytes] = {}
    images: dict[str, str] = {}
    if importlib.util.find_spec("matplotlib") is not None:
        from reports.render.plots import plot_names, render_plots

        files.update(render_plots(results))
        images = plot_names(results)
    else:
        print("matplotlib is not installed: the report has no plots", file=sys.stderr)
    files[FILES["json"]] = json_bytes(results, FILES["json"])
    files[FILES["markdown"]] = render_markdown(results, images).encode()
    files[FILES["html"]] = render_html(results, images).encode()
    return files


def write_report(results: dict, out: Path) -> list[Path]:
    """Render everything, then write each file atomically (plots first, the HTML last)."""
    from scratch.errors import DataError
    from scratch.weights import write_atomically

    files = render(results)
    try:
        out.mkdir(parents=True, exist_ok=True)
        return [write_atomically(out / name, payload) for name, payload in files.items()]
    except OSError as error:
        raise DataError(f"--out {out}: cannot write ({error.strerror or error})") from None


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
