"""``backprop-parity compare A B``: your own two models — a Keras model and its torch port, your
NumPy or JAX code and a framework's — on one batch: outputs in both modes, the loss, every
gradient, one optimizer step and ``--steps`` free-running steps; where they differ, the convention
doctor names the known cause (:mod:`ports`).

Each side is a ``.keras`` file (loaded with ``safe_mode``), ``file.py:factory[@state_dict.pt]``
(**runs your code**: see :mod:`ports.sides`) or a weight file of this project. The batch is
``--data FILE`` or the default (MNIST when the model fits it, random inputs otherwise:
:mod:`ports.data`). Both descriptors and the data file are checked before any framework is
imported. Exit status 0 when A and B agree, 1 when they differ, 2 on bad input or a model that
cannot be read (an unsupported layer is named), 3 when a framework a side needs is not installed.
"""

from __future__ import annotations

import argparse
import re

from reports.cli.exit_codes import (
    EXIT_BACKEND_UNAVAILABLE,
    EXIT_OK,
    EXIT_PARITY_FAILED,
    EXIT_USAGE,
    BackendUnavailable,
    UsageError,
)
from reports.cli.model_memory import check_model_fits
from reports.cli.output_paths import check_outputs
from reports.cli.progress import progress
from reports.cli.threads import add_threads_argument, thread_limited

COPIES = 8            # model copies a compare holds at once (see run), for reports.cli.model_memory
EXIT_STATUSES = (EXIT_OK, EXIT_PARITY_FAILED, EXIT_USAGE, EXIT_BACKEND_UNAVAILABLE)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_threads_argument(parser)
    parser.add_argument("a", metavar="A", help="side A (the reference): model.keras, "
                                               "file.py:factory[@state.pt] or a weight file")
    parser.add_argument("b", metavar="B", help="side B (the port), the same forms")
    parser.add_argument("--data", metavar="FILE", help="inputs (.npy, .npz with x [and y], .csv); default: "
                                                       "MNIST when the model fits it, else N(0, 1) inputs")
    parser.add_argument("--batch", type=int, help="samples drawn for the batch (default 32); a --data file "
                                                  "is used whole")
    parser.add_argument("--steps", type=int, default=3, help="training steps compared (default 3)")
    parser.add_argument("--input-shape", metavar="N|C,H,W",
                        help="the sample shape, where neither side can tell (a torch module starting "
                             "with a conv)")
    parser.add_argument("--json", metavar="FILE", help="also write the verdict and every comparison as JSON")


FRAMEWORK_IMPORT = re.compile(r"^\s*(import|from)\s+(torch|keras|tensorflow|jax)\b", re.MULTILINE)


def _imports_a_framework(descriptor) -> bool:
    """Whether a side will bring torch, TensorFlow or JAX in (a .keras file; a factory file that
    imports one): then the frameworks are configured first (``twins.hygiene``, torch before
    TensorFlow, before the user's code imports them); a NumPy side or a weight file never pays."""
    if descriptor.kind == "keras":
        return True
    return descriptor.kind == "factory" and bool(FRAMEWORK_IMPORT.search(
        descriptor.path.read_text(encoding="utf-8", errors="replace")))


def _rows(path: str) -> int:
    """The samples of a --data file, read from its header or lines without loading it."""
    from ports.data import count_rows

    return count_rows(path)


def _shape(text: str | None):
    if text is None:
        return None
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise UsageError(f"--input-shape {text!r}: expected N or C,H,W integers") from None
    if len(shape) not in (1, 3) or min(shape) < 1:
        raise UsageError(f"--input-shape {text!r}: expected N or C,H,W positive integers")
    return shape


@thread_limited
def run(args: argparse.Namespace) -> int:
    import importlib.util

    from ports.data import check_data_file
    from ports.sides import check_descriptor

    if args.batch is not None and args.data is not None:
        raise UsageError("--batch draws the batch; a --data file is used whole: give one of them")
    args.batch = 32 if args.batch is None and args.data is None else args.batch
    if (args.batch is not None and args.batch < 2) or args.steps < 1:
        raise UsageError(f"--batch must be >= 2 and --steps >= 1 (got {args.batch}, {args.steps})")
    sides = [check_descriptor(args.a, "A"), check_descriptor(args.b, "B")]
    if args.data is not None:
        check_data_file(args.data)                  # its values are checked once the shape is known
    inputs = _shape(args.input_shape)
    check_outputs({"--json": args.json})
    for descriptor in sides:
        needs = {"keras": "tensorflow"}.get(descriptor.kind)
        if descriptor.state_dict is not None:
            needs = "torch"
        if needs and importlib.util.find_spec(needs) is None:
            raise BackendUnavailable(f"{descriptor.text} needs {needs}, which is not installed")

    if any(_imports_a_framework(descriptor) for descriptor in sides):
        progress("compare", "loading the frameworks")
        from twins import hygiene

        hygiene.configure_frameworks(threads=args.threads or None)   # before the user's code imports them
    progress("compare", "reading both sides (a factory runs your code)")
    from ports import compare as flow
    from ports.data import load_batch, targets_of
    from ports.sides import read_side

    # a file side knows its sample shape; a factory's torch module may not: read the files first
    order = sorted(range(2), key=lambda index: sides[index].kind == "factory")
    read = {}
    for index in order:
        known = inputs or next((reading.spec.input_shape for reading, _ in read.values()), None)
        read[index] = read_side(sides[index], known, float64=True)
    (a, real_a), (b, real_b) = read[0], read[1]
    # the run holds at once: both sides' own objects, both twins, the doctor's A, B and variant
    # (float64 and long double): refused with the figures before any of it is allocated
    check_model_fits(a.spec.replace(dtype="float64"), COPIES, batch=args.batch or _rows(args.data))
    x, labels, drawn = load_batch(args.data, a.spec, args.batch)
    targets = targets_of(a.spec, labels)
    source = ""
    if args.data is not None:
        source = f" from {args.data}" + (", labels drawn (seed 0): the file has none" if drawn else "")
    progress("compare", f"comparing {len(x)} samples{source}, {args.steps} step(s)")
    result = flow.run(a, real_a, b, real_b, x, targets, args.steps)
    print(result.headline())
    for label, reading in (("A", result.a), ("B", result.b)):
        print(f"{label}: {reading.source} ({reading.framework}) — {reading.spec.describe_stack()}, "
              f"loss {reading.spec.loss}, {reading.spec.optimizer.name} "
              f"({reading.spec.optimizer.convention}), {reading.spec.dtype}")
        for note in reading.notes:
            print(f"   note: {note}")
    from judge.parity import format_table

    for label, rows in result.faithful.items():
        bad = [c for c in rows if not c.ok]
        status = ("reproduces" if not bad else f"does NOT reproduce ({len(bad)} of {len(rows)} off)")
        print(f"{label}'s own model {status} the twin of its reading: {len(rows)} quantities, float64")
        if bad:
            print(format_table([(f"{label} own vs reading", c) for c in rows]))
    for line in result.notes:
        print(f"note: {line}")
    for evidence in result.evidence:
        print(f"found: {evidence.describe()}")
    if result.diagnosis is not None:
        print("doctor (both readings in the engine, float64):")
        for line in result.diagnosis.lines():
            print(f"  {line}")
    print("measured on your own objects, B against A (normwise relative error, float64):")
    for measured in result.measured:
        print(f"  {measured.name:<36}{measured.error:>11.2e}  {measured.note}".rstrip())
    if args.json:
        from reports.json_file import write_json

        write_json(args.json, {
            "schema": "backprop-parity-compare/1", "verdict": "PASS" if result.ok else "FAIL",
            "headline": result.headline(), "a": args.a, "b": args.b,
            "faithful": {label: [{"quantity": c.name, "error": c.error, "bound": c.bound, "ok": c.ok}
                                 for c in rows] for label, rows in result.faithful.items()},
            "measured": [{"quantity": m.name, "error": m.error, "note": m.note} for m in result.measured],
            "causes": [] if result.diagnosis is None else result.diagnosis.causes,
            "doctor": [] if result.diagnosis is None else result.diagnosis.lines(),
            "evidence": [evidence.describe() for evidence in result.evidence]})
        print(f"json: {args.json}")
    return EXIT_OK if result.ok else EXIT_PARITY_FAILED
