"""The study's sections as report blocks, from :func:`reports.study.page.study_data`'s JSON: the study
page and the report's study section render the same blocks (HTML or Markdown).

In order: one line per intermediate, the annotated graph of the step, the hard layers step by step,
the frameworks' own records of the same backward, where backprop leaks. Every id carries the
model's name, so two models' studies share one report without a clash.
"""

from __future__ import annotations

import re

from reports.explain import walk
from reports.render.blocks import Section, Table
from reports.study.graph import graph_blocks
from reports.study.hard_layers import hard_layers_blocks
from reports.study.leaks import leaks_blocks
from reports.study.records import records_blocks

FRAMEWORKS = tuple(walk.FRAMEWORKS)


def study_sections(data: dict) -> list[Section]:
    model = data["model"]
    return [Section(f"study-rows-{model}", f"One line per intermediate: {model}", rows_blocks(data)),
            Section(f"study-graph-{model}", f"The annotated graph of one step: {model}",
                    graph_blocks(data["graph"], id=f"graph-{model}")),
            Section(f"study-hard-{model}", f"The hard layers step by step: {model}",
                    hard_layers_blocks(data["hard"], id=f"hard-{model}")),
            Section(f"study-records-{model}", f"The frameworks' own records: {model}",
                    records_blocks(data["records"], data["rows"], id=f"study-records-{model}")),
            Section(f"study-leaks-{model}", "Where backprop leaks, in all four backends",
                    leaks_blocks(data["leaks"], id=f"leaks-{model}"))]


def rows_blocks(data: dict) -> list:
    """The intermediates table: one row each, forward then backward. A framework that did not run
    says why once, above the table; a long chain of ops is shortened to its end (the whole chain
    is in the frameworks' records), torch's node to the tensors it saved."""
    rows = data["rows"]
    absent = {}                        # framework → why it did not run, where no row has its numbers
    for framework in FRAMEWORKS:
        notes = {row[COLUMNS[framework]] for row in rows if row[f"{framework}_match"] == "—"}
        if rows and len(notes) == 1 and all(row[f"{framework}_match"] == "—" for row in rows):
            absent[framework] = notes.pop()
    columns = ["name", "shape", *FRAMEWORKS, "engine statement", "math", "torch node (saved tensors)",
               "TF op(s)", "JAX eqn(s)"]             # the agreement first: visible on a narrow window
    cells, classes = [], []
    for row in rows:
        torch = "—" if "torch" in absent else row["torch_nodes"] + _saved_tensors(row.get("torch_saved", ""))
        tf = "—" if "keras" in absent else shortened(row["tf_ops"])
        jax = "—" if "jax" in absent else shortened(row["jax_eqns"])
        marks = [_mark(row, framework) for framework in FRAMEWORKS]
        cells.append([row["name"], row["shape"], *marks, row["scratch"], row["math"], torch, tf, jax])
        classes.append(["", "", *(_css(row[f"{framework}_match"]) for framework in FRAMEWORKS),
                        "", "", "", "", ""])
    bound = rows[0]["tolerance"] if rows else 0.0
    lead = (f"One step of `{data['model']}` on {data['batch']} samples, {data['dtype']}, loss "
            f"{data['loss']:.6g}. Each intermediate is one line: each framework's agreement, then the "
            "engine statement that computes it "
            "(quoted from the engine's source) and the math it implements, then the node torch's autograd "
            "recorded (with the tensors it saved for backward), the TensorFlow ops and the JAX equations "
            "that compute the same array. Agreement: exact (bit for bit), ≈ (within the tolerance table, "
            f"e.g. {bound:.0e} relative here) or ✗, with max|framework − engine|.")
    blocks = [lead]
    if absent:
        blocks.append("Not in this table: " + "; ".join(f"{framework} — {why}" for framework, why in
                                                         absent.items()) + ".")
    return [*blocks, Table(columns, cells, id=f"study-rows-{data['model']}", classes=classes,
                           css="study-rows")]


COLUMNS = walk.COLUMNS
SHORT = 90                     # characters of an op chain shown in the table


def shortened(chain: str, limit: int = SHORT) -> str:
    """``chain`` ("A → B → … → sink"), or its end from an arrow on, within ``limit`` characters."""
    if len(chain) <= limit:
        return chain
    cut = chain.find(" → ", len(chain) - limit)
    return chain if cut < 0 else "… → " + chain[cut + 3:]


def _saved_tensors(saved: str) -> str:
    """" — saved mat1 (8, 784), mat2 (784, 64)": the tensors of torch's saved list (a shape in
    parentheses), without its settings (alpha=1, dilation=(1, 1), …)."""
    _, _, listed = saved.partition(" saved ")
    tensors = re.findall(r"\b\w+ \([0-9, ]*\)", listed)
    return f" — saved {', '.join(tensors)}" if tensors else ""


def _mark(row: dict, framework: str) -> str:
    word, absolute = row[f"{framework}_match"], row[f"{framework}_max_abs"]
    return word if absolute is None or word == "exact" else f"{word} {absolute:.1e}"


def _css(word: str) -> str:
    return {"exact": "ok", "≈": "ok", "✗": "fail"}.get(word, "neutral")
