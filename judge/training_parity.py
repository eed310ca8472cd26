"""Training parity of one backend pair: the per-step verdict and the free-running measurement.

``compare_training(actual, desired, spec, tensors, x, targets, plan, make_backend=…)`` builds
fresh backends from the same start with the caller's factory (``twins.backends.make_backend``
for the twins) and runs

1. :func:`judge.stepwise.check_steps` — the pass/fail: every step re-synchronized, every
   gradient within the gradient bound, every update within ``ULPS_UPDATE`` ulps;
2. :func:`judge.trajectory.follow` — both backends free-running on the same plan: within
   tolerance, or parted for a named rounding cause, or judged by the higher-precision arbiter
   (a third backend among ``referees`` where the engine is a side and its own run cannot decide).

The pair passes when (1) passes and (2) is within tolerance, explained, or cleared by the
arbiter. Used by ``backprop-parity check``, the report's curves scenario and the test suite.
"""

from __future__ import annotations

from dataclasses import dataclass

from judge.parity import Comparison
from judge.stepwise import StepwiseResult, check_steps
from judge.trajectory import Trajectory, follow


@dataclass(frozen=True)
class TrainingParity:
    actual: str
    desired: str
    stepwise: StepwiseResult
    trajectory: Trajectory

    @property
    def ok(self) -> bool:
        return self.stepwise.ok and self.trajectory.ok

    def summary_rows(self) -> list[Comparison]:
        """The worst per-step comparison of each kind (forward, gradient, update): a failing one
        if any, else the one nearest its bound."""
        rows = []
        for kind in ("forward", "gradient", "update"):
            of_kind = [c for c in self.stepwise.comparisons if c.kind == kind]
            if of_kind:
                rows.append(max(of_kind, key=lambda c: (not c.ok, c.error / c.bound if c.bound else c.error)))
        return rows

    def describe_failures(self) -> list[str]:
        lines = [c.describe() for c in self.stepwise.failed[:8]]
        if len(self.stepwise.failed) > 8:
            lines.append(f"… and {len(self.stepwise.failed) - 8} more")
        if not self.trajectory.ok:
            lines.append(f"free-running: {self.trajectory.verdict()}")
        return lines


def compare_training(actual_name: str, desired_name: str, spec, tensors, x, targets, plan,
                     bounds: dict | None = None, *, make_backend, engine: str = "scratch",
                     referees: tuple[str, ...] = ()) -> TrainingParity:
    """Both checks on fresh backends built from the named ``tensors`` ({name: array} per layer
    with parameters, ``Network.tensors``) with zero optimizer state. ``make_backend(name, spec,
    tensors=…)`` builds the backend called ``name``; ``engine`` is the name it builds the NumPy
    engine under (the reference formula of every update); ``referees`` name the backends, in
    order, that may referee the free-running run in float64 where the engine is a side and cannot
    (the pair's own two and the engine are left out; built only when needed)."""
    plan = list(plan)

    def fresh(name):
        return make_backend(name, spec, tensors=tensors)

    def referee(name):
        return lambda spec64, tensors64: make_backend(name, spec64, tensors=tensors64)

    stepwise = check_steps(fresh(actual_name), fresh(desired_name), fresh(engine), x, targets, plan,
                           bounds)
    others = [referee(name) for name in referees if name not in (actual_name, desired_name, engine)]
    trajectory = follow(fresh(actual_name), fresh(desired_name), x, targets, plan, referees=others)
    return TrainingParity(actual_name, desired_name, stepwise, trajectory)
