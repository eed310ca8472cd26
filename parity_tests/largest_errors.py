"""The suite's closing table: the largest parity error seen per dtype, kind and quantity.

``parity_tests/frameworks/conftest.py`` records every comparison into :data:`TABLE`; the root
``conftest.py`` prints it. Under pytest-xdist each worker records its own table and hands it to
the controller (``workeroutput``), which merges them with :func:`merge` before printing, so the
table is the same with and without ``-n``.
"""

from __future__ import annotations

# (dtype, kind, quantity without its layer number) → [largest error, its bound, comparisons]
TABLE: dict[tuple[str, str, str], list] = {}


def record(dtype: str, comparisons) -> None:
    for c in comparisons:
        if c.problem and c.error == float("inf"):
            continue
        merge([(dtype, c.kind, c.name.rstrip("0123456789") or c.name, c.error, c.bound, 1)])


def merge(rows) -> None:
    """Fold rows ``(dtype, kind, quantity, largest, bound, count)`` into :data:`TABLE`."""
    for dtype, kind, name, largest, bound, count in rows:
        entry = TABLE.setdefault((dtype, kind, name), [0.0, bound, 0])
        entry[0] = max(entry[0], largest)
        entry[1] = max(entry[1], bound)
        entry[2] += count


def rows() -> list[tuple]:
    """:data:`TABLE` as plain rows (what a worker sends to the controller)."""
    return [(*key, *value) for key, value in TABLE.items()]


def write(terminalreporter) -> None:
    if not TABLE:
        return
    line = terminalreporter.write_line
    terminalreporter.section("largest parity error seen, per dtype and quantity (normwise relative)")
    line(f"{'dtype':<9}{'kind':<12}{'quantity':<12}{'largest':>11}{'bound':>9}{'compared':>10}")
    for (dtype, kind, name), (largest, bound, count) in sorted(TABLE.items()):
        line(f"{dtype:<9}{kind:<12}{name:<12}{largest:>11.2e}{bound:>9.0e}{count:>10}")
