"""The study's sections as report blocks, from :func:`reports.study.page.study_data`'s JSON: the study
page and the report's study section render the same blocks (HTML or Markdown).

In order: one line per intermediate, the annotated graph of the step, the hard layers step by step,
the frameworks' own records of the same backward. Every id carries the model's name, so two models'
studies share one report without a clash.
"""

from __future__ import annotations

from reports.render.blocks import Section, Table
from reports.study.graph import graph_blocks
from reports.study.hard_layers import hard_layers_blocks
from reports.study.records import records_blocks

FRAMEWORKS = ("torch", "keras", "jax")


def study_sections(data: dict) -> list[Section]:
    model = data["model"]
    return [Section(f"study-rows-{model}", f"One line per intermediate: {model}", rows_blocks(data)),
            Section(f"study-graph-{model}", f"The annotated graph of one step: {model}",
                    graph_blocks(data["graph"], id=f"graph-{model}")),
            Section(f"study-hard-{model}", f"The hard layers step by step: {model}",
                    hard_layers_blocks(data["hard"], id=f"hard-{model}")),
            Section(f"study-records-{model}", f"The frameworks' own records: {model}",
                    records_blocks(data["records"], data["rows"], id=f"study-records-{model}"))]


def rows_blocks(data: dict) -> list:
    """The intermediates table: one row each, forward then backward."""
    rows = data["rows"]
    columns = ["name", "shape", "engine statement", "math", "torch node (saved for backward)", "TF op(s)",
               "JAX eqn(s)", *FRAMEWORKS]
    cells, classes = [], []
    for row in rows:
        torch = row["torch_nodes"] + (f" — {row['torch_saved']}" if row.get("torch_saved") else "")
        marks = [_mark(row, framework) for framework in FRAMEWORKS]
        cells.append([row["name"], row["shape"], row["scratch"], row["math"], torch, row["tf_ops"],
                      row["jax_eqns"], *marks])
        classes.append(["", "", "", "", "", "", "",
                        *(_css(row[f"{framework}_match"]) for framework in FRAMEWORKS)])
    bound = rows[0]["tolerance"] if rows else 0.0
    lead = (f"One step of `{data['model']}` on {data['batch']} samples, {data['dtype']}, loss "
            f"{data['loss']:.6g}. Each intermediate is one line: the engine statement that computes it "
            "(quoted from the engine's source) and the math it implements, then the node torch's autograd "
            "recorded, the TensorFlow gradient op and the JAX equation that compute the same array, and "
            "each framework's agreement: exact (bit for bit), ≈ (within the tolerance table, "
            f"e.g. {bound:.0e} relative here) or ✗, with max|framework − engine|.")
    return [lead, Table(columns, cells, id=f"study-rows-{data['model']}", classes=classes, css="study-rows")]


def _mark(row: dict, framework: str) -> str:
    word, absolute = row[f"{framework}_match"], row[f"{framework}_max_abs"]
    return word if absolute is None or word == "exact" else f"{word} {absolute:.1e}"


def _css(word: str) -> str:
    return {"exact": "ok", "≈": "ok", "✗": "fail"}.get(word, "neutral")
