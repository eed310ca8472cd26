"""The study page: one self-contained HTML file (inline CSS and SVG, no script, no font, nothing
fetched) about one training step of one model, and the same sections for the report.

:func:`study_data` computes every part from one engine step (:mod:`reports.study.run`) and the
twins on the same parameters and batch; it is JSON-ready, so the report keeps it in
``results.json`` and renders it with the same :func:`study_sections`. The parts, in page order:

1. one line per intermediate (:mod:`reports.explain.walk`): name, shape, the engine's statement and
   its math, each framework's node/op/equation and exact / ≈ / max|Δ|;
2. the annotated graph of the step (:mod:`reports.study.graph`): every node's value and gradient,
   every backward edge's local rule;
3. the hard layers step by step (:mod:`reports.study.hard_layers`): BatchNorm's staged backward,
   softmax + cross-entropy fused against separate, max-pool routing and ties, a convolution as
   im2col and one GEMM each way, the dropout mask, L2 — each checked against the run;
4. the three frameworks' own records of the same backward (:mod:`reports.study.records`);
5. where backprop leaks (:mod:`reports.study.leaks`): vanishing gradients in a deep sigmoid stack,
   dead ReLU units over training, an exploding stack, and what each framework does about it by
   default — measured in all four backends, the same experiments whatever the model.

:mod:`reports.study.sections` turns the data into blocks, for this page and for the report.
"""

from __future__ import annotations

from html import escape

from reports.explain import walk
from reports.render.html import STYLE, render_block
from reports.study.graph import graph_data
from reports.study.hard_layers import hard_layers_data
from reports.study.leaks import LeakSettings, leaks_data
from reports.study.records import records_data
from reports.study.run import study_run
from reports.study.sections import study_sections
from scratch.spec import OptimizerSpec


def study_data(model: str, spec, tensors, x, labels, masks=None, leaks: LeakSettings | None = None) -> dict:
    """Every part of the page for one step of ``spec`` from ``tensors`` on (``x``, ``labels``), and
    the leaks section's experiments at ``leaks`` (default :class:`LeakSettings`; they do not
    depend on the model)."""
    run = study_run(spec, tensors, x, labels, masks)
    backends = walk.framework_backends(spec.replace(optimizer=OptimizerSpec()), tensors)   # built once
    rows = walk.explain(spec, tensors, x, run.targets, masks, backends)
    return {"model": model, "spec": spec.to_dict(), "batch": len(x), "dtype": spec.dtype, "loss": run.loss,
            "rows": rows, "graph": graph_data(run), "hard": hard_layers_data(run),
            "records": records_data(spec, tensors, x, run.targets, masks, backends),
            "leaks": leaks_data(leaks)}


def render_study_html(data: dict) -> str:
    """The study page as one HTML document (the report's style, which styles the study blocks too)."""
    parts = study_sections(data)
    nav = "".join(f'<li><a href="#{escape(s.id)}">{escape(s.title)}</a></li>' for s in parts)
    body = [f"<h1>The backprop study: {escape(data['model'])}</h1>", f"<nav><ul>{nav}</ul></nav>"]
    for section in parts:
        body.append(f'<section id="{escape(section.id)}"><h2>{escape(section.title)}</h2>')
        body += [render_block(block) for block in section.blocks]
        body.append("</section>")
    return "\n".join(["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
                      f"<title>backprop study ({escape(data['model'])})</title>",
                      f"<style>\n{STYLE}\n</style>", "</head>", "<body>", *body, "</body>",
                      "</html>", ""])
