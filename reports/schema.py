"""The schema of ``results.json``, the one file the report is rendered from.

Every number is a JSON number or ``null`` where the value was not finite (JSON has no NaN). Errors
are relative (max|a − d| / max|d|) unless named ``abs``; accuracies are fractions in [0, 1];
``*_pp`` are percentage points. A report runs rows of (scenario, catalog model) (``rows``,
``reports.scenarios.suite``): ``parity``, ``curves`` and ``divergence`` are lists with one entry per
model, each naming its ``model``; so are ``explain`` (the backprop study: its
one-line-per-intermediate rows, the step's annotated graph, the hard layers step by step, the
frameworks' records and where backprop leaks) and ``findings`` (the convention findings measured on
a convolutional model, each effect ``bit-identical``, ``rounding`` or ``moves``), both optional.
``bench`` is optional too (``backprop-parity report --bench FILE``, repeatable): a list of the JSON
files that ``backprop-parity bench --json`` writes, each stored unchanged and described by
:data:`BENCH` — whatever the model, one shape: the run's settings (threads, settle pause, framework
and BLAS settings, the GEMM peak per dtype, the spec of each model timed) and ``rows``, one per timed
configuration (model, batch, dtype, optimizer): FLOPs per step and per backend the median and
quartiles of seconds per step (``*_s``), its ratio to scratch's (``ratio_to_scratch``) and to the
fastest backend's (``ratio_to_fastest``), GFLOP/s of the matrix products and that as a percentage
of the dtype's best measured GEMM (``percent_of_peak``); where measured, the engine's per-layer
profile (``profile``) and each backend's peak memory in MiB (``memory``). For example::

    {"format": "backprop-parity-bench/2", "threads": 1, "settle_s": 0.25, "frameworks": {…},
     "blas": […], "peak_gflops": {"float32": {"numpy": 61.2, "torch": 64.0}},
     "specs": {"lenet5": {…}},
     "rows": [{"model": "lenet5", "batch": 64, "dtype": "float32", "optimizer": "adam", "flops": 47…,
               "backends": {"scratch": {"median_s": 0.0081, "q1_s": …, "q3_s": …, "ratio_to_scratch": 1.0,
                                        "ratio_to_fastest": 2.1, "gflops": 5.8, "percent_of_peak": 9.5}, …},
               "profile": {"engine_profile_s": {"conv1 im2col": …, "step": 0.0079}, "im2col": […],
                           "engine_step_tracemalloc_peak_bytes": …}}]}

Bench files of the shapes before :data:`BENCH_FORMAT` (a dense stack's ``grid``, another model's
``cnn``) and a results.json that stored them (``bench`` as one object, ``bench_cnn``) are refused:
re-run ``bench``. Two bench files of one model are refused too. Format 1 files (one MLP section each and a
separate ``cnn`` one) are refused: re-run the report. ``verdict`` (written by every run since issue
10; optional so older files still render) is the report's opening line and its failing comparisons
(``reports.verdict.report``); its counts must agree with the parity rows and training checks.

:data:`SCHEMA` describes the whole file with a few node types (:class:`Obj`, :class:`ListOf`,
:class:`MapOf`, :class:`Scalar`, and :class:`Where` for a rule across fields); :func:`validate`
walks a loaded dict against it and raises :class:`scratch.errors.DataError` naming the first
offending path, e.g. ``results.json: parity.rows[3].rel_error: expected a number or null, got 'x'``.
:func:`validate_bench` does the same for a bench file on its own, named by its path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from scratch.errors import DataError

FORMAT = "backprop-parity-report/2"          # 2: one entry per (scenario, model) row


@dataclass(frozen=True)
class Scalar:
    """A JSON scalar of one of ``kinds`` (number, integer, string, boolean, null)."""

    kinds: tuple[str, ...]
    choices: tuple | None = None

    def check(self, value, path: str) -> None:
        if not any(_is(kind, value) for kind in self.kinds):
            raise _error(path, f"expected {' or '.join(_NAMES[k] for k in self.kinds)}, got {value!r:.60}")
        if self.choices is not None and value not in self.choices:
            raise _error(path, f"expected one of {', '.join(map(repr, self.choices))}, got {value!r:.60}")


@dataclass(frozen=True)
class ListOf:
    item: object
    min_length: int = 0

    def check(self, value, path: str) -> None:
        if not isinstance(value, list):
            raise _error(path, f"expected a list, got {type(value).__name__}")
        if len(value) < self.min_length:
            raise _error(path, f"expected at least {self.min_length} item(s), got {len(value)}")
        for index, item in enumerate(value):
            self.item.check(item, f"{path}[{index}]")


@dataclass(frozen=True)
class MapOf:
    """An object with any string keys, every value of one type."""

    value: object

    def check(self, value, path: str) -> None:
        if not isinstance(value, dict):
            raise _error(path, f"expected an object, got {type(value).__name__}")
        for key, item in value.items():
            self.value.check(item, f"{path}.{key}")


@dataclass(frozen=True)
class Obj:
    """An object with ``required`` and ``optional`` keys; others are errors unless ``open``."""

    required: dict
    optional: dict = field(default_factory=dict)
    open: bool = False

    def check(self, value, path: str) -> None:
        if not isinstance(value, dict):
            raise _error(path, f"expected an object, got {type(value).__name__}")
        for key, node in self.required.items():
            if key not in value:
                raise _error(path, f"missing key {key!r}")
            node.check(value[key], f"{path}.{key}" if path else key)
        for key, node in self.optional.items():
            if key in value:
                node.check(value[key], f"{path}.{key}" if path else key)
        if not self.open:
            unknown = sorted(set(value) - set(self.required) - set(self.optional))
            if unknown:
                raise _error(path, f"unknown key {unknown[0]!r}")


@dataclass(frozen=True)
class OrNull:
    """``node``, or ``null``."""

    node: object

    def check(self, value, path: str) -> None:
        if value is not None:
            self.node.check(value, path)


@dataclass(frozen=True)
class Where:
    """``node``, then a rule across its fields: ``rule(value)`` is a message saying what is
    inconsistent, or ``None``."""

    node: object
    rule: Callable[[object], str | None]

    def check(self, value, path: str) -> None:
        self.node.check(value, path)
        problem = self.rule(value)
        if problem:
            raise _error(path, problem)


def _is(kind: str, value) -> bool:
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "null":
        return value is None
    return isinstance(value, {"string": str, "boolean": bool}[kind])


_NAMES = {"number": "a number", "integer": "an integer", "string": "a string", "boolean": "true/false",
          "null": "null"}


class _Mismatch(Exception):
    """Where (``path``) and how (``message``) a value departs from its node; :func:`check_against`
    turns it into a :class:`DataError` that names the file."""

    def __init__(self, path: str, message: str):
        super().__init__(path, message)
        self.path, self.message = path, message


def _error(path: str, message: str) -> _Mismatch:
    return _Mismatch(path, message)


def check_against(node, value, source: str) -> None:
    """Raise ``DataError("<source>: <path>: <message>")`` unless ``value`` follows ``node``."""
    try:
        node.check(value, "")
    except _Mismatch as mismatch:
        raise DataError(f"{source}: {mismatch.path or '(top level)'}: {mismatch.message}") from None


NUM = Scalar(("number",))
NUM_OR_NULL = Scalar(("number", "null"))
INT = Scalar(("integer",))
INT_OR_NULL = Scalar(("integer", "null"))
STR = Scalar(("string",))
STR_OR_NULL = Scalar(("string", "null"))
BOOL = Scalar(("boolean",))
ANY_SCALAR = Scalar(("number", "string", "boolean", "null"))
SPEC = Obj({}, open=True)                 # a ModelSpec.to_dict(); checked by ModelSpec itself
SERIES = ListOf(NUM_OR_NULL)
BACKEND_ACC = {"scratch": NUM_OR_NULL, "torch": NUM_OR_NULL, "keras": NUM_OR_NULL, "jax": NUM_OR_NULL}

# The worst comparison of one kind over every re-synchronized training step.
STEP_WORST = OrNull(Obj({"quantity": STR, "step": INT_OR_NULL, "error": NUM_OR_NULL, "tolerance": NUM,
                         "ok": BOOL}))
DTYPE = Scalar(("string",), choices=("float64", "float32"))


BENCH_FORMAT = "backprop-parity-bench/2"   # 2: one shape for every model, a list of timed rows


def _bench_rows_consistent(bench: dict) -> str | None:
    """Every row has scratch's timing (every ``ratio_to_scratch`` is relative to it), a spec for its
    model and a GEMM peak for its dtype; no (model, batch, dtype, optimizer) is timed twice."""
    seen = set()
    for index, row in enumerate(bench["rows"]):
        if "scratch" not in row["backends"]:
            return f"rows[{index}]: backends: no 'scratch' timing (every ratio_to_scratch is relative to it)"
        if row["model"] not in bench["specs"]:
            return f"rows[{index}]: model {row['model']!r} has no entry in specs"
        if not bench["peak_gflops"].get(row["dtype"]):
            return f"rows[{index}]: dtype {row['dtype']} has no peak_gflops entry"
        point = (row["model"], row["batch"], row["dtype"], row["optimizer"])
        if point in seen:
            return f"rows[{index}]: {', '.join(map(str, point))} is timed twice"
        seen.add(point)
    return None


BENCH_TIMING = Obj(
    required={"median_s": NUM, "q1_s": NUM, "q3_s": NUM, "ratio_to_scratch": NUM, "ratio_to_fastest": NUM,
              "gflops": NUM, "percent_of_peak": NUM},
    optional={"steps_per_block": INT, "samples": INT},
)
# where the engine's step goes (``reports.bench.profile``)
BENCH_PROFILE = Obj({"engine_profile_s": MapOf(NUM),
                     "im2col": ListOf(Obj({"layer": INT, "rows": INT, "cols": INT, "bytes": INT})),
                     "engine_step_tracemalloc_peak_bytes": INT})
BENCH_MEMORY = Obj({"rss_before_mib": NUM, "peak_mib": NUM, "step_extra_mib": NUM})
BENCH_ROW = Obj(
    required={"model": STR, "batch": INT, "dtype": DTYPE, "optimizer": STR, "flops": INT,
              "backends": MapOf(BENCH_TIMING)},
    optional={"profile": BENCH_PROFILE, "memory": MapOf(BENCH_MEMORY)},
)
# ``backprop-parity bench --json``, whatever the model: the run's settings, then one row per timed
# configuration
BENCH = Where(Obj(
    required={
        "format": Scalar(("string",), choices=(BENCH_FORMAT,)),
        "threads": INT,
        "settle_s": NUM,
        "frameworks": MapOf(STR),
        "blas": ListOf(MapOf(ANY_SCALAR)),
        "peak_gflops": MapOf(MapOf(NUM)),
        "specs": MapOf(SPEC),
        "rows": ListOf(BENCH_ROW, min_length=1),
    },
    optional={"suite_wall_s": NUM, "report_wall_s": NUM},
), _bench_rows_consistent)
OLD_BENCH_KEYS = ("grid", "cnn", "layers")   # the two shapes before format 2


def _bench_models_once(results: dict) -> str | None:
    models = [model for bench in results.get("bench", []) for model in bench["specs"]]
    twice = next((model for model in models if models.count(model) > 1), None)
    return None if twice is None else f"bench: two bench files time model {twice!r}"


FAILURE = Obj({
    "section": Scalar(("string",), choices=("parity", "curves")), "model": STR, "dtype": DTYPE, "pair": STR,
    "config": STR_OR_NULL, "layer": INT_OR_NULL, "quantity": STR, "kind": STR, "step": INT_OR_NULL,
    "error": NUM_OR_NULL, "tolerance": NUM_OR_NULL, "excess": NUM_OR_NULL, "passes_at": NUM_OR_NULL,
    "reproduce": STR}, optional={"explanation": STR})
VERDICT = Obj({"line": STR, "ok": BOOL, "comparisons": INT, "failed": INT, "failures": ListOf(FAILURE)})


def _verdict_matches(results: dict) -> str | None:
    """The stored verdict must say what the parity rows and training checks say."""
    if "verdict" not in results:
        return None
    from reports.verdict.report import report_verdict

    stored, recomputed = results["verdict"], report_verdict(results)
    for key in ("ok", "comparisons", "failed"):
        if stored[key] != recomputed[key]:
            return (f"verdict.{key} is {stored[key]!r}, but the parity rows and training checks give "
                    f"{recomputed[key]!r}")
    return None


PARITY_ROW = Obj({
    "dtype": DTYPE, "pair": STR, "quantity": STR, "layer": INT_OR_NULL, "kind": STR, "abs_error": NUM_OR_NULL,
    "rel_error": NUM_OR_NULL, "tolerance": NUM, "ok": BOOL},
    optional={"max_ulps": NUM_OR_NULL, "where": ListOf(INT),
              "note": STR})    # how a failing row was judged again from its cause (judge.explained)
TRAINING_CHECK = {"config": STR, "pair": STR, "steps_ok": BOOL, "step_forward": STEP_WORST,
                  "step_gradient": STEP_WORST, "step_update": STEP_WORST, "curve_rel_error": NUM_OR_NULL,
                  "curve_tolerance": NUM, "parameters_rel_error": NUM_OR_NULL, "parameters_tolerance": NUM,
                  "parting_step": INT_OR_NULL, "cause": STR, "free_running": STR, "free_running_ok": BOOL,
                  "ok": BOOL}
# optional: a max-pool tie rerouted at a step (judge.pool_ties), as text and as data
# (reports.scenarios.curves.tie_entries: the reference's values at its own first maximum and at the
# actual's, the actual's at the same two positions, each pair's gap in ulps)
TIE = Obj({"step": INT_OR_NULL, "layer": INT, "windows": INT, "window": ListOf(INT),
           "reference": ListOf(NUM), "actual": ListOf(NUM), "gap_ulp": ListOf(NUM)})
TRAINING_NOTES = {"notes": ListOf(STR), "ties": ListOf(TIE)}
EFFECTS = ("bit-identical", "rounding", "moves")
# The convention findings measured on a convolutional model (``reports.scenarios.cnn_findings``).
FINDINGS = Obj({"model": STR, "dtype": DTYPE, "data": STR, "rows": ListOf(Obj({
    "finding": STR, "case": STR, "quantity": STR, "evidence": STR, "dtype": DTYPE,
    "rel_error": NUM_OR_NULL, "max_abs": NUM_OR_NULL, "tolerance": NUM,
    "effect": Scalar(("string",), choices=EFFECTS)}))})
# One catalog model's entry of each model scenario (``reports.scenarios.parity``, ``curves``,
# ``divergence``, ``explain``).
PARITY = Obj({"model": STR, "data": STR, "specs": MapOf(SPEC), "pairs": ListOf(STR),
              "rows": ListOf(PARITY_ROW)})
CURVES = Obj({
    "model": STR, "data": STR, "spec": SPEC, "optimizers": MapOf(Obj({}, open=True)), "steps": INT,
    "runs": ListOf(Obj({"config": STR, "optimizer": STR, "convention": STR, "backend": STR, "dtype": DTYPE,
                        "loss": SERIES})),
    "checks": ListOf(Obj({**TRAINING_CHECK, "dtype": DTYPE}, optional=TRAINING_NOTES)),
})
DIVERGENCE = Obj({
    "model": STR, "data": STR, "spec": SPEC, "steps": INT,
    "series": ListOf(Obj({"pair": STR, "dtype": STR, "loss_abs_diff": SERIES, "param_rel_diff": SERIES})),
    "summary": ListOf(Obj({
        "pair": STR, "dtype": STR,
        "loss_abs_diff": Obj({"first": NUM_OR_NULL, "last": NUM_OR_NULL, "max": NUM_OR_NULL}),
        "param_rel_diff": Obj({"first": NUM_OR_NULL, "last": NUM_OR_NULL, "max": NUM_OR_NULL})})),
})
# The backprop study of one model (``reports.study.page.study_data``): its one-line-per-intermediate
# rows, the annotated graph (laid out: every box's centre and size, every edge's points) and the
# frameworks' own records.
_SUMMARY = OrNull(Obj({"mean": NUM_OR_NULL, "std": NUM_OR_NULL, "min": NUM_OR_NULL, "max": NUM_OR_NULL}))
_DRAWING = {
    "nodes": ListOf(Obj({"id": STR, "op": STR, "kind": STR, "name": STR, "shape": ListOf(INT),
                         "value": _SUMMARY, "grad": _SUMMARY, "x": NUM, "y": NUM, "w": NUM, "h": NUM},
                        open=True)),
    "edges": ListOf(Obj({"from": STR, "to": STR, "kind": STR, "points": ListOf(ListOf(NUM))}, open=True)),
    "width": NUM, "height": NUM}
STUDY_GRAPH = Obj({"stack": STR, "batch": INT, "loss": NUM, "collapsed": BOOL, **_DRAWING,
                   "layers": ListOf(Obj({"layer": INT, "title": STR, **_DRAWING}))})
_HARD_CHECK = Obj({"quantity": STR, "against": STR, "max_abs": NUM_OR_NULL, "relative": NUM_OR_NULL,
                   "bound": NUM, "ok": BOOL})
_HARD_TOPIC = Obj({}, optional={"absent": STR, "checks": ListOf(_HARD_CHECK)}, open=True)
HARD_TOPICS = ("batch_norm", "softmax", "max_pool", "conv", "dropout", "l2", "bptt")   # hard_layers.TOPICS
NEWER_HARD_TOPICS = ("bptt",)          # optional: a results.json written before it still loads
STUDY_HARD = Obj({"stack": STR, "batch": INT, "dtype": DTYPE,
                  **{topic: _HARD_TOPIC for topic in HARD_TOPICS if topic not in NEWER_HARD_TOPICS}},
                 optional={topic: _HARD_TOPIC for topic in NEWER_HARD_TOPICS})
_OPEN = Obj({}, open=True)
STUDY_LEAKS = Obj({"settings": _OPEN, "backends": ListOf(STR), "skipped": MapOf(STR), "tolerance": NUM,
                   "timings": MapOf(NUM), "seconds": NUM, "vanishing": ListOf(_OPEN), "dead": _OPEN,
                   "exploding": _OPEN, "defaults": _OPEN})   # inf and NaN as the strings "inf", "nan"
EXPLAIN = Obj({"model": STR, "spec": SPEC, "batch": INT, "dtype": DTYPE, "loss": NUM,
               "rows": ListOf(MapOf(ANY_SCALAR)), "graph": STUDY_GRAPH, "hard": STUDY_HARD,
               "leaks": STUDY_LEAKS,
               "records": MapOf(Obj({"title": STR}, optional={"lines": ListOf(STR), "note": STR}))})
ROW = Obj({"scenario": STR, "model": STR_OR_NULL, "settings": Obj({}, open=True)})

SCHEMA = Where(Obj(
    required={
        "format": Scalar(("string",), choices=(FORMAT,)),
        "mode": Scalar(("string",), choices=("quick", "default", "full")),
        "created_utc": STR,
        "command": STR,
        "wall_time_s": NUM,
        "timings_s": MapOf(NUM),
        "model": STR,
        "rows": ListOf(ROW),
        "backends": Obj({"used": ListOf(STR), "skipped": MapOf(STR)}),
        "parity": ListOf(PARITY),
        "curves": ListOf(CURVES),
        "divergence": ListOf(DIVERGENCE),
        "seeds": Obj({
            "full_setting": BOOL,
            "rows": ListOf(Obj({"experiment": STR, "claim": NUM, "seed_setting": STR, "setting": STR,
                                "reduced": BOOL, **BACKEND_ACC, "spread_pp": NUM_OR_NULL})),
            "runs": ListOf(Obj({"experiment": STR, "backend": STR, "spec": SPEC, "steps": INT,
                                "train_samples": INT, "train_wall_time_s": NUM, "final_loss": NUM_OR_NULL,
                                "train_accuracy": NUM, "test_accuracy": NUM})),
        }),
        "variants": Obj({
            "variants": MapOf(STR),
            "rows": ListOf(Obj({"variant": STR, "description": STR, "check": STR, "reference": STR,
                                "detected": BOOL, "located": STR, "message": STR,
                                "curve_rel_error": NUM_OR_NULL})),
        }),
        "conventions": Obj({
            "data": STR, "spec": SPEC, "steps": INT,
            "rows": ListOf(Obj({
                "comparison": STR, "torch_optimizer": STR, "keras_optimizer": STR,
                "at_step": ListOf(Obj({"step": INT, "param_rel_diff": NUM_OR_NULL,
                                       "loss_abs_diff": NUM_OR_NULL})),
                "torch_test_accuracy": NUM, "keras_test_accuracy": NUM, "accuracy_diff_pp": NUM_OR_NULL})),
            "series": ListOf(Obj({"comparison": STR, "param_rel_diff": SERIES, "loss_abs_diff": SERIES})),
        }),
        "environment": Obj({
            "platform": STR, "machine": STR, "python_implementation": STR, "executable": STR,
            "versions": MapOf(STR), "threads": MapOf(INT),
            "blas": ListOf(MapOf(ANY_SCALAR)), "hygiene": MapOf(STR), "env": MapOf(STR_OR_NULL),
        }),
    },
    optional={"verdict": VERDICT, "explain": ListOf(EXPLAIN), "findings": ListOf(FINDINGS),
              "bench": ListOf(BENCH)},
), lambda results: _verdict_matches(results) or _bench_models_once(results))


def validate(results, source: str = "results.json") -> None:
    """Raise :class:`DataError` naming ``source`` (the file read) unless ``results`` follows
    :data:`SCHEMA`; a benchmark stored in a shape before :data:`BENCH_FORMAT` is one error that
    says to re-run ``bench``."""
    if isinstance(results, dict) and ("bench_cnn" in results or isinstance(results.get("bench"), dict)):
        raise DataError(f"{source}: its benchmark is in the shape written before {BENCH_FORMAT}; re-run "
                        "`backprop-parity bench --json FILE`, then the report with `--bench FILE`")
    check_against(SCHEMA, results, source)


def validate_bench(bench, source: str) -> None:
    """Raise :class:`DataError` naming ``source`` unless ``bench`` follows :data:`BENCH`; a file in
    a shape before :data:`BENCH_FORMAT` (the dense grid's ``grid`` or the CNN step's ``cnn``) is one
    error that says to re-run ``bench``."""
    if isinstance(bench, dict) and "format" not in bench and any(key in bench for key in OLD_BENCH_KEYS):
        raise DataError(f"{source}: a bench file in the shape written before {BENCH_FORMAT}; re-run "
                        "`backprop-parity bench --json FILE`")
    check_against(BENCH, bench, source)
