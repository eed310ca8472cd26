"""The verdict of ``backprop-parity check``: one headline, the failing comparisons with the
smallest tolerance that would pass each, and the same as JSON (``check --json FILE``).

A check is a list of (backend pair, :class:`~judge.parity.Comparison`) rows — forward,
gradient and per-step training rows — plus one free-running trajectory per trained pair. It
passes when every row is within its bound and every trajectory is within tolerance, explained
by a rounding cause, or cleared by the higher-precision arbiter (``judge.trajectory``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

FORMAT = "backprop-parity-check/1"


@dataclass
class Verdict:
    spec: object
    rows: list                      # (pair label, Comparison)
    trainings: list                 # judge.training_parity.TrainingParity
    backends: list[str]
    skipped: dict[str, str]
    steps: int
    reproduce: str

    @property
    def failed_rows(self) -> list:
        return [(label, c) for label, c in self.rows if not c.ok]

    @property
    def failed_trainings(self) -> list:
        return [t for t in self.trainings if not t.trajectory.ok]

    @property
    def total(self) -> int:
        return len(self.rows) + len(self.trainings)

    @property
    def failed_count(self) -> int:
        return len(self.failed_rows) + len(self.failed_trainings)

    @property
    def ok(self) -> bool:
        return self.failed_count == 0

    def headline(self) -> str:
        """One line: how many comparisons, and all within tolerance or the worst that are not."""
        pairs = ", ".join(dict.fromkeys(label for label, _ in self.rows))
        if self.ok:
            return (f"verdict: PASS — all {self.total} comparisons within tolerance "
                    f"({self.spec.dtype}; {pairs})")
        worst = sorted(self.failed_rows, key=lambda row: -_excess(row[1]))
        named = [f"{label} {_where(c)} {_by_how_much(c)}" for label, c in worst[:3]]
        named += [f"{t.actual} vs {t.desired} free-running: {t.trajectory.blame()}"
                  for t in self.failed_trainings]
        more = self.failed_count - len(named)
        return (f"verdict: FAIL — {self.failed_count} of {self.total} comparisons exceed tolerance "
                f"({self.spec.dtype}): " + "; ".join(named) + (f"; and {more} more" if more > 0 else ""))

    def failure_details(self) -> list[str]:
        """For every failing row: the smallest tolerance that would pass it, and how to reproduce."""
        if self.ok:
            return []
        lines = ["", "failing comparisons (the smallest tolerance that would pass each):"]
        for label, c in self.failed_rows:
            lines.append(f"  {label} {_where(c)}: {c.describe()}; passes at {_passing(c)}")
        for training in self.failed_trainings:
            pair = f"{training.actual} vs {training.desired}"
            lines.append(f"  {pair} free-running: {training.trajectory.verdict()}")
        lines.append(f"  reproduce: {self.reproduce}")
        return lines

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "verdict": self.headline(),
            "ok": self.ok,
            "dtype": self.spec.dtype,
            "spec": self.spec.to_dict(),
            "backends": self.backends,
            "skipped": self.skipped,
            "steps": self.steps,
            "reproduce": self.reproduce,
            "comparisons": [_row(label, c) for label, c in self.rows],
            "training": [_training(t) for t in self.trainings],
        }

    def write_json(self, path) -> None:
        from reports.json_file import write_json

        write_json(path, self.to_dict())


def smallest_passing(c) -> float | None:
    """The smallest bound this comparison would pass (None for a shape, dtype or missing problem)."""
    if c.problem or not math.isfinite(c.error):
        return None
    return c.error


def _excess(c) -> float:
    if c.problem or not math.isfinite(c.error):
        return math.inf
    return c.error / c.bound if c.bound else math.inf


def _where(c) -> str:
    layer = f"layer {c.layer} " if c.layer is not None else ""
    step = f" at step {c.step}" if c.step is not None else ""
    return f"{layer}{c.name}{step}"


def _by_how_much(c) -> str:
    if c.problem:
        return f"({c.problem})"
    if c.kind == "update":
        return f"({c.error:.0f} ulp, {_excess(c):.3g}× the bound {c.bound:.0f} ulp)"
    return f"(rel err {c.error:.2e}, {_excess(c):.3g}× the bound {c.bound:.0e})"


def _passing(c) -> str:
    value = smallest_passing(c)
    if value is None:
        return "no tolerance (a structural mismatch)"
    return f"{math.ceil(value)} ulp" if c.kind == "update" else f"{value:.3e}"


def _finite(value) -> float | None:
    """``value`` as a plain float for JSON (a NumPy scalar too), None where it is not a finite
    number (NaN, ±inf, None)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _row(label: str, c) -> dict:
    ok = bool(c.ok)                 # a NumPy error makes c.ok a NumPy bool, which JSON cannot hold
    return {"pair": label, "quantity": c.name, "layer": c.layer, "kind": c.kind, "step": c.step,
            "error": _finite(c.error), "tolerance": _finite(c.bound), "ok": ok, "problem": c.problem,
            "max_ulps": _finite(c.ulps), "where": [int(i) for i in c.where],
            "smallest_passing_tolerance": None if ok else _finite(smallest_passing(c)),
            "note": c.note}                 # how the row was judged from its cause ("" if it was not)


def _training(t) -> dict:
    trajectory = t.trajectory
    arbiter = trajectory.arbiter
    return {
        "pair": f"{t.actual} vs {t.desired}",
        "steps_ok": bool(t.stepwise.ok),
        "free_running_ok": bool(trajectory.ok),
        "free_running": trajectory.verdict(),
        "parting_step": trajectory.parting_step,
        "cause": trajectory.cause,
        "largest_parameter_error": _finite(max(trajectory.parameter_errors, default=0.0)),
        "largest_loss_error": _finite(max(trajectory.loss_errors, default=0.0)),
        "arbiter": None if arbiter is None else {"dtype": arbiter.dtype, "actual": _finite(arbiter.actual),
                                                 "reference": _finite(arbiter.reference),
                                                 "factor": _finite(arbiter.factor),
                                                 "floor": _finite(arbiter.floor),
                                                 "referee": arbiter.referee,
                                                 "independent": arbiter.independent,
                                                 "off": trajectory.farther},
        "ok": bool(t.ok),
    }
