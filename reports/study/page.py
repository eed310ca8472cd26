"""The study page: one self-contained HTML file (inline CSS and SVG, no script, no font, nothing
fetched) about one training step of one model, and the same sections for the report.

:func:`study_data` computes every part from one engine step (:mod:`reports.study.run`) and the
twins on the same parameters and batch; it is JSON-ready, so the report keeps it in
``results.json`` and renders it with the same :func:`study_sections`. The parts, in page order:

1. one line per intermediate (:mod:`reports.explain.walk`): name, shape, the engine's statement and
   its math, each framework's node/op/equation and exact / ≈ / max|Δ|;
2. the three frameworks' own records of the same backward (:mod:`reports.study.records`).
"""

from __future__ import annotations

from html import escape

from reports.explain import walk
from reports.render.blocks import Section, Table
from reports.render.html import STYLE, render_block
from reports.study.records import records_blocks, records_data
from reports.study.run import study_run

FRAMEWORKS = ("torch", "keras", "jax")
PAGE_STYLE = STYLE + """
figure.svg { margin: 0.8em 0; overflow-x: auto; }
figure.svg svg { max-width: 100%; height: auto; }
details { margin: 0.4em 0; }
summary { cursor: pointer; font-weight: 600; }
table#table-study-rows td:nth-child(3), table#table-study-records td:nth-child(2) { font-family: monospace; }
table#table-study-rows td:nth-child(n+8) { white-space: nowrap; }
table#table-study-rows, table#table-study-records { display: block; overflow-x: auto; }
"""


def study_data(model: str, spec, tensors, x, labels, masks=None) -> dict:
    """Every part of the page for one step of ``spec`` from ``tensors`` on (``x``, ``labels``)."""
    run = study_run(spec, tensors, x, labels, masks)
    rows = walk.explain(spec, tensors, x, run.targets, masks)
    return {"model": model, "spec": spec.to_dict(), "batch": len(x), "dtype": spec.dtype, "loss": run.loss,
            "rows": rows, "records": records_data(spec, tensors, x, run.targets, masks)}


def study_sections(data: dict) -> list[Section]:
    model = data["model"]
    return [Section(f"study-rows-{model}", f"One line per intermediate: {model}", rows_blocks(data)),
            Section(f"study-records-{model}", f"The frameworks' own records: {model}",
                    records_blocks(data["records"], data["rows"]))]


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
    return [lead, Table(columns, cells, id="study-rows", classes=classes)]


def _mark(row: dict, framework: str) -> str:
    word, absolute = row[f"{framework}_match"], row[f"{framework}_max_abs"]
    return word if absolute is None or word == "exact" else f"{word} {absolute:.1e}"


def _css(word: str) -> str:
    return {"exact": "ok", "≈": "ok", "✗": "fail"}.get(word, "neutral")


def render_study_html(data: dict) -> str:
    """The study page as one HTML document."""
    parts = study_sections(data)
    nav = "".join(f'<li><a href="#{escape(s.id)}">{escape(s.title)}</a></li>' for s in parts)
    body = [f"<h1>The backprop study: {escape(data['model'])}</h1>", f"<nav><ul>{nav}</ul></nav>"]
    for section in parts:
        body.append(f'<section id="{escape(section.id)}"><h2>{escape(section.title)}</h2>')
        body += [render_block(block) for block in section.blocks]
        body.append("</section>")
    return "\n".join(["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
                      f"<title>backprop study ({escape(data['model'])})</title>",
                      f"<style>\n{PAGE_STYLE}\n</style>", "</head>", "<body>", *body, "</body>",
                      "</html>", ""])
