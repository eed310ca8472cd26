"""The building blocks of the report's content (``reports.render.document``): sections of
paragraphs, tables, images and preformatted text, and the number formats every section shares
(listed in ``reports.render.document``'s docstring), so each number is formatted one way in every
section and both files."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from reports.verdict.report import by_how_much, passes_at, where
from scratch.spec import ModelSpec


@dataclass(frozen=True)
class Table:
    """``classes``, when given, has one CSS class string per cell of ``rows`` (the HTML colours
    status and heat-map cells by it; Markdown ignores it); ``css`` is the table's own class."""

    columns: list[str]
    rows: list[list[str]]
    caption: str = ""
    id: str = ""
    classes: list[list[str]] | None = None
    css: str = ""

    def __post_init__(self):
        if self.classes is not None and [len(r) for r in self.classes] != [len(r) for r in self.rows]:
            raise ValueError(f"table {self.id or self.caption!r}: classes do not match the cells")


@dataclass(frozen=True)
class Image:
    file: str
    alt: str


@dataclass(frozen=True)
class Pre:
    text: str


@dataclass(frozen=True)
class Svg:
    """An inline SVG drawing made by the project's own code (``reports.study``): every piece of
    text in ``markup`` was escaped when it was drawn. ``alt`` is its one-line description (the
    Markdown summary shows it instead of the drawing)."""

    markup: str
    alt: str


@dataclass(frozen=True)
class Details:
    """A collapsed group of blocks: ``summary`` is the line that opens it (HTML ``<details>``;
    Markdown shows the summary as a bold line and the blocks under it)."""

    summary: str
    blocks: list = field(default_factory=list)
    open: bool = False


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    blocks: list = field(default_factory=list)    # str (a paragraph) | Table | Image | Pre | Svg | Details


def fmt_err(value) -> str:
    if value is None:
        return "n/a"
    return "0" if value == 0 else f"{value:.2e}"


def fmt_tol(value) -> str:
    return f"{value:.0e}"


def fmt_pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def fmt_pp(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


# the hyperparameters each optimizer reads (the others keep their defaults, see OptimizerSpec)
OPTIMIZER_FIELDS = {"sgd": ("learning_rate",), "momentum": ("learning_rate", "momentum"),
                    "rmsprop": ("learning_rate", "rho", "epsilon", "momentum"),
                    "adam": ("learning_rate", "beta1", "beta2", "epsilon")}


def fmt_optimizer(optimizer: dict) -> str:
    """``adam, torch convention: learning_rate=0.001, beta1=0.9, …`` from an OptimizerSpec dict."""
    fields = OPTIMIZER_FIELDS.get(optimizer["name"], ())
    return (f"{optimizer['name']}, {optimizer['convention']} convention: "
            + ", ".join(f"{name}={optimizer[name]:g}" for name in fields))


def fmt_ms(seconds: float) -> str:
    return f"{1e3 * seconds:.3f}"


def fmt_ratio(value: float) -> str:
    return f"{value:.2f}"


def fmt_rate(value: float) -> str:
    """GFLOP/s and percentages of the GEMM peak."""
    return f"{value:.1f}"


def fmt_cell(value) -> str:
    """Any JSON scalar, for generic tables."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def status_class(text: str) -> str:
    """CSS class of a status cell: ``ok`` (ok, yes), ``fail`` (FAIL…, NO), else ``neutral``
    (explained, skipped, …)."""
    if text in ("ok", "yes"):
        return "ok"
    if text.startswith("FAIL") or text == "NO":
        return "fail"
    return "neutral"


def status_classes(rows: list[list[str]], status_columns: tuple[int, ...]) -> list[list[str]]:
    """``status_class`` for the cells of ``status_columns`` (negative: from the end), "" elsewhere."""
    out = []
    for row in rows:
        wanted = {i % len(row) for i in status_columns}
        out.append([status_class(cell) if i in wanted else "" for i, cell in enumerate(row)])
    return out


def failures_table(failures: list[dict], id: str, caption: str) -> list[Table]:
    """Every failing comparison: where, by how much, the smallest tolerance that would pass it,
    and the command that reproduces it."""
    if not failures:
        return []
    rows = [[where(f), by_how_much(f), passes_at(f), f["reproduce"]] for f in failures]
    return [Table(["comparison", "by how much", "smallest tolerance that passes", "reproduce"], rows,
                  caption=caption, id=id, classes=[["fail", "", "", ""] for _ in rows])]


def image(images, key, alt) -> list[Image]:
    return [Image(images[key], alt)] if key in images else []


def passes_at_row(row: dict) -> str:
    return "no tolerance" if row["rel_error"] is None else f"{row['rel_error']:.3e}"


def curve_status(check: dict) -> str:
    """``ok``, or FAIL with the smallest tolerance that would pass each failing per-step check."""
    if check["ok"]:
        return "ok"
    parts = []
    for kind in ("gradient", "update"):
        worst = check[f"step_{kind}"]
        if worst is not None and not worst["ok"]:
            if worst["error"] is None:
                parts.append(f"{kind}: no tolerance")
            elif kind == "update":
                parts.append(f"update passes at {math.ceil(worst['error'])} ulp")
            else:
                parts.append(f"gradient passes at {worst['error']:.3e}")
    if not check["free_running_ok"]:
        parts.append("free-running")
    return "FAIL" + (": " + "; ".join(parts) if parts else "")


def step_worst(entry, ulps: bool = False) -> str:
    if entry is None:
        return "-"
    error = f"{entry['error']:.0f} ulp" if ulps else fmt_err(entry["error"])
    return f"{entry['quantity']} @{entry['step']}: {error}"


def describe_model(spec: dict) -> str:
    """``[n_0, n_1, …, n_L] relu/softmax`` for an MLP; the layer shapes of any other stack
    (``1×28×28 → 6×28×28 → … → 10``)."""
    model = ModelSpec.from_dict(spec)
    if model.is_mlp:
        return f"{list(model.layer_sizes)} {model.hidden_activation}/{model.output_activation}"
    return " → ".join("×".join(map(str, shape)) for shape in model.layer_shapes)
