"""The max-pool ties that rounding broke the other way in a model's training checks
(``curves[].checks[].ties``, ``reports.scenarios.curves.tie_entries``): a sentence and a table of the
first few."""

from __future__ import annotations

import numpy as np

from reports.render.blocks import Table

TIES_SHOWN = 5        # max-pool tie rows in the table; the rest are counted (all are in results.json)


def tie_blocks(checks: list[dict], table_suffix: str = "") -> list:
    """The max-pool ties that rounding broke the other way in a training check: one sentence and a
    table of the first :data:`TIES_SHOWN` (pair, step, layer, first flipped window, the two values
    in the engine and in the twin, each pair's gap in ulps), the rest counted — every one is in
    results.json (``curves[].checks[].ties``). A check's notes that no tie entry covers (a results file
    written before ``ties`` existed, or a note of another kind) follow as text."""
    rows, pairs = [], set()
    for c in checks:
        for tie in c.get("ties", []):
            pairs.add((c["dtype"], c["pair"]))
            rows.append([c["dtype"], c["pair"], "-" if tie["step"] is None else str(tie["step"]),
                         str(tie["layer"]), ", ".join(map(str, tie["window"])) + _more(tie["windows"]),
                         _values(tie["reference"], c["dtype"]), _values(tie["actual"], c["dtype"]),
                         " / ".join(f"{g:.3g}" for g in tie["gap_ulp"])])
    notes = [f"{c['dtype']} {c['pair']}, {note}" for c in checks if not c.get("ties")
             for note in c.get("notes", [])]
    blocks = []
    if rows:
        shown = rows[:TIES_SHOWN]
        more = len(rows) - len(shown)
        blocks.append(
            f"Max-pool ties that rounding broke the other way: {len(rows)} (step, layer) "
            f"case{'s' * (len(rows) != 1)} in {len(pairs)} training check{'s' * (len(pairs) != 1)}. "
            "Two elements of a window are equal, or within the forward bound, in one backend and ordered "
            "the other way in the other, so each routes the gradient to its own first maximum; the "
            "gradients below the pool were compared with the engine's backward routed as the twin's "
            "(see the README)."
            + (f" The first {len(shown)} are shown, and {more} more are in results.json "
               "(curves[].checks[].ties)."
               if more else ""))
        blocks.append(Table(["dtype", "pair", "step", "layer", "window (n, c, y, x)", "engine's values",
                             "twin's values", "gap (ulp): engine / twin"], shown,
                            caption="max-pool ties routed differently (values: the engine's first "
                                    "maximum, then the twin's)", id=f"ties{table_suffix}"))
    if notes:
        blocks.append("Max-pool ties that rounding broke the other way (the gradients below the pool were "
                      "compared with the engine's backward routed as the twin's, see the README): "
                      + "; ".join(notes) + ".")
    return blocks


def _values(values: list[float], dtype: str) -> str:
    """Each value as the shortest decimal that reads back as the same number of ``dtype``."""
    return ", ".join(str(np.dtype(dtype).type(v)) for v in values)


def _more(windows: int) -> str:
    return f" (+{windows - 1} more)" if windows > 1 else ""


