"""The study's intermediates table (``reports.study.sections.rows_blocks``): a framework that did not
run says why once, above the table, instead of in every cell; a long op chain keeps its end; torch's
node lists the tensors it saved, not its settings."""

from __future__ import annotations

from reports.render.blocks import Table
from reports.study.sections import _saved_tensors, rows_blocks, shortened


def row(name: str, keras_note: str | None = None) -> dict:
    keras = {"tf_ops": keras_note, "keras_match": "—", "keras_max_abs": None} if keras_note else {
        "tf_ops": "MatMul", "keras_match": "≈", "keras_max_abs": 1e-17}
    return {"name": name, "shape": "(2, 3)", "scratch": "z = a @ w", "math": "Z = A·W",
            "torch_nodes": "AddmmBackward0", "torch_saved": "AddmmBackward0 saved alpha=1, mat1 (2, 4)",
            "torch_match": "exact", "torch_max_abs": 0.0, "jax_eqns": "dot_general", "jax_match": "exact",
            "jax_max_abs": 0.0, "tolerance": 1e-13, **keras}


def data(rows: list[dict]) -> dict:
    return {"model": "m", "batch": 2, "dtype": "float64", "loss": 0.5, "rows": rows}


def test_a_framework_that_did_not_run_says_why_once():
    why = "skipped: keras backend cannot express slope_at_zero='alpha'"
    blocks = rows_blocks(data([row("Z1", why), row("dZ1", why)]))
    table = next(block for block in blocks if isinstance(block, Table))
    assert sum(why in block for block in blocks if isinstance(block, str)) == 1
    assert all(cells[8] == "—" for cells in table.rows)
    assert not any(why in cell for cells in table.rows for cell in cells)
    assert [cells[7] for cells in table.rows] == ["AddmmBackward0 — saved mat1 (2, 4)"] * 2


def test_a_framework_that_ran_keeps_its_cells():
    blocks = rows_blocks(data([row("Z1"), row("dZ1", "skipped: only here")]))   # not every row: no banner
    table = next(block for block in blocks if isinstance(block, Table))
    assert [cells[8] for cells in table.rows] == ["MatMul", "skipped: only here"]
    assert not any("Not in this table" in block for block in blocks if isinstance(block, str))


def test_long_chains_keep_their_end_and_settings_leave_torchs_cell():
    chain = " → ".join(f"Op{i}" for i in range(40))
    short = shortened(chain)
    assert len(short) <= 95 and short.startswith("… → ") and short.endswith("→ Op39")
    assert shortened("A → B") == "A → B"
    assert _saved_tensors("ConvolutionBackward0 saved dilation=(1, 1), input (8, 1, 28, 28), "
                          "weight (6, 1, 5, 5)") == " — saved input (8, 1, 28, 28), weight (6, 1, 5, 5)"
    assert _saved_tensors("TBackward0 (saved nothing)") == ""
