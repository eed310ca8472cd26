"""A model's training curves' max-pool ties (issue 18, part 3): a short table of the first few —
pair, step, layer, window, the two values in each backend, their gap in ulps — the rest counted,
every one kept in results.json (``curves[].checks[].ties``). NumPy only: the entries are built from
``judge.pool_ties.TieFlip`` objects as the training check carries them, the gaps from
``numpy.nextafter``, not from a run."""

from __future__ import annotations

import numpy as np
import pytest

from judge.parity import Comparison
from judge.pool_ties import TieFlip
from reports.render import ties as render_ties
from reports.render.document import Table
from reports.scenarios.curves import tie_entries
from reports.schema import TIE, check_against


def _after(value: float, dtype: str, ulps: int) -> float:
    x = np.asarray(value, dtype=dtype)
    for _ in range(ulps):
        x = np.nextafter(x, np.asarray(np.inf, dtype=dtype))
    return float(x)


def _flip(layer: int, windows: int, value: float, dtype: str, actual_gap: int) -> TieFlip:
    """Tied exactly in the reference, ``actual_gap`` ulps apart in the actual (its second choice
    the larger, as a flip has it)."""
    return TieFlip(layer, windows, (0, 1, 2, 3), (value, value), (value, _after(value, dtype, actual_gap)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_each_gap_is_counted_in_ulps_of_the_dtype(dtype):
    value = float(np.asarray(0.0019141945871562, dtype=dtype))
    assert _flip(4, 1, value, dtype, 3).gaps_ulp(dtype) == (0.0, 3.0)


def test_entries_are_one_per_step_and_layer_and_follow_the_schema():
    dtype = "float32"
    flip = _flip(4, 2, 0.25, dtype, 1)
    comparisons = [Comparison(name, 3, "gradient", 0.0, 1e-4, step=step, note="rerouted", ties=(flip,))
                   for step in (5, 9) for name in ("dA3", "dW3", "dZ3")]
    comparisons.append(Comparison("dW1", 1, "gradient", 0.0, 1e-4, step=5))
    entries = tie_entries(comparisons, dtype)
    assert [(e["step"], e["layer"]) for e in entries] == [(5, 4), (9, 4)]
    for entry in entries:
        check_against(TIE, entry, "tie")
        assert entry["window"] == [0, 1, 2, 3] and entry["windows"] == 2
        assert entry["reference"] == [0.25, 0.25] and entry["gap_ulp"] == [0.0, 1.0]


def _checks(n_ties: int) -> list[dict]:
    dtype = "float64"
    comparisons = [Comparison("dA3", 3, "gradient", 0.0, 1e-7, step=step, ties=(_flip(4, 1, 0.5, dtype, 2),))
                   for step in range(n_ties)]
    return [{"dtype": dtype, "pair": "torch vs scratch", "notes": ["step 0: compared with … (max-pool) …"],
             "ties": tie_entries(comparisons, dtype)}]


def test_the_table_is_capped_and_counts_the_rest():
    blocks = render_ties.tie_blocks(_checks(7), "-lenet5")
    sentence, table = blocks
    assert isinstance(table, Table) and table.id == "ties-lenet5"
    assert len(table.rows) == render_ties.TIES_SHOWN == 5
    assert table.columns[:5] == ["dtype", "pair", "step", "layer", "window (n, c, y, x)"]
    assert table.rows[0][:5] == ["float64", "torch vs scratch", "0", "4", "0, 1, 2, 3"]
    assert table.rows[0][5] == "0.5, 0.5" and table.rows[0][7] == "0 / 2"
    assert table.rows[0][6] == f"0.5, {_after(0.5, 'float64', 2)!r}", "shortest round-trip digits"
    assert "7 (step, layer) cases in 1 training check" in sentence
    assert "The first 5 are shown, and 2 more are in results.json (curves[].checks[].ties)" in sentence
    assert len(sentence) < 600, "a sentence, not a paragraph of numbers"


def test_a_few_ties_are_all_shown_and_none_is_no_block():
    sentence, table = render_ties.tie_blocks(_checks(2))
    assert len(table.rows) == 2 and "more are in results.json" not in sentence
    assert render_ties.tie_blocks(_checks(0)[:0]) == []


def test_float32_values_read_back_as_the_same_float32():
    value = float(np.float32(0.1))                     # 0.10000000149011612 as a float64
    flip = _flip(4, 1, value, "float32", 1)
    comparisons = [Comparison("dA3", 3, "gradient", 0.0, 1e-4, step=1, ties=(flip,))]
    checks = [{"dtype": "float32", "pair": "jax vs scratch", "ties": tie_entries(comparisons, "float32")}]
    _, table = render_ties.tie_blocks(checks)
    engine, twin = table.rows[0][5].split(", "), table.rows[0][6].split(", ")
    assert engine == ["0.1", "0.1"] and np.float32(twin[1]) == np.nextafter(np.float32(0.1), np.float32(1))
    assert table.rows[0][7] == "0 / 1"


def test_notes_without_tie_entries_still_reach_the_page():
    """A results.json written before ``ties`` existed keeps its notes as text."""
    old = [{"dtype": "float32", "pair": "jax vs scratch", "notes": ["step 3: rerouted at layer 2"]}]
    (sentence,) = render_ties.tie_blocks(old)
    assert "float32 jax vs scratch, step 3: rerouted at layer 2" in sentence
