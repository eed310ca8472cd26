"""The three frameworks' own records of the same backward pass, as each keeps it: torch's ``grad_fn``
graph (every node in the order the backward runs it, with the tensors it saved), TensorFlow's
gradient ops (what ``GradientTape.gradient`` added to the traced graph, in graph order) and the
backward equations of JAX's jaxpr of the pullback (``make_jaxpr`` of ``vjp``). Each line that writes
a named quantity ends in "→ dW2" — the same names as the engine's rows, whose statement the study
shows beside it (:mod:`reports.explain.walk`)."""

from __future__ import annotations

import importlib

from reports.explain.walk import framework_backends
from reports.render.blocks import Details, Pre, Table

# framework → (the backend, the module and function that read its record, the record's title)
RECORDERS = {"torch": ("reports.explain.torch_graph", "grad_fn_record", "torch: loss.grad_fn, node by node"),
             "keras": ("reports.explain.tf_graph", "tape_record", "TensorFlow: the tape's gradient ops"),
             "jax": ("reports.explain.jax_graph", "jaxpr_record",
                     "JAX: the backward equations of make_jaxpr(vjp pullback)")}


def records_data(spec, tensors, x, targets, masks=None, backends: dict | None = None) -> dict:
    """{framework: {"title", "lines" (list of str) or "note" (why it did not run)}}; ``backends``
    as :func:`reports.explain.walk.framework_backends` builds them (built here when not given)."""
    backends = framework_backends(spec, tensors) if backends is None else backends
    out = {}
    for framework, (module, function, title) in RECORDERS.items():
        backend = backends[framework]
        if isinstance(backend, str):
            out[framework] = {"title": title, "note": backend}
            continue
        record = getattr(importlib.import_module(module), function)(backend, x, targets, masks)
        out[framework] = {"title": title, "lines": list(record)}
    return out


def records_blocks(records: dict, rows: list[dict], id: str = "study-records") -> list:
    """The mapping table (each gradient: the engine's statement beside each framework's nodes,
    ops and equations; its table id ``id``) and each framework's whole record, collapsed."""
    gradient_rows = [row for row in rows if row["name"].startswith("d")]
    columns = ["quantity", "engine statement", "torch grad_fn (saved)", "TF gradient ops", "JAX equations"]
    table = Table(columns,
                  [[row["name"], row["scratch"], f"{row['torch_nodes']} — {row.get('torch_saved', '')}",
                    row["tf_ops"], row["jax_eqns"]] for row in gradient_rows],
                  caption="The same backward, line by line: the engine's statement and each framework's "
                          "record of the step that produces the quantity", id=id, css="study-records")
    blocks = ["Every framework keeps its own record of the forward pass and replays it backwards. "
              "Below, each gradient of the step is one row: the engine's hand-written statement, then the "
              "torch autograd nodes (with what they saved for backward), the TensorFlow gradient ops and "
              "the JAX equations that produce the same array.", table]
    for record in records.values():
        if "note" in record:
            blocks.append(f"{record['title']}: {record['note']}.")
            continue
        named = sum("→ d" in line for line in record["lines"])
        blocks.append(Details(f"{record['title']} — {len(record['lines'])} lines, {named} write a named "
                              "quantity", [Pre("\n".join(record["lines"]))]))
    return blocks
