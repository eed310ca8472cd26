"""Who the free-running arbiter blames, with real twins (``judge.trajectory``).

The engine's higher-precision run is the engine's own code: against it a broken engine looks
right and a correct torch looks off. So an engine bug — tanh′ written as 1 − A instead of 1 − A²,
the mutation self-test's ``tanh-derivative-1-minus-a`` — must never be blamed on torch: with no
third backend the verdict says it cannot tell which side is off, and with JAX offered as a
referee (float64, independent of both) it names the engine. A bug on the twin's side — torch's
update 1e-6 too large — is named torch by the same referee.
"""

from __future__ import annotations

import numpy as np
import pytest

from judge.training_parity import compare_training
from scratch.activations import Tanh
from scratch.batching import training_plan
from scratch.model import Network
from scratch.spec import ModelSpec, OptimizerSpec
from twins.backends import make_backend

pytest.importorskip("torch")
pytest.importorskip("jax")

pytestmark = pytest.mark.deliberate_mismatch

SPEC = ModelSpec((2, 4, 1), hidden_activation="tanh", output_activation="sigmoid", loss="bce",
                 init="glorot_uniform", optimizer=OptimizerSpec("sgd", learning_rate=1.0), batch_size=8,
                 epochs=1, seed=4)


def _training(referees):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((16, 2))
    start = Network(SPEC)
    targets = start.targets(rng.integers(0, 2, 16))
    plan = list(training_plan(SPEC, len(x)))
    return compare_training("torch", "scratch", SPEC, start.tensors, x, targets, plan,
                            make_backend=make_backend, referees=referees)


@pytest.fixture
def broken_tanh(monkeypatch):
    monkeypatch.setattr(Tanh, "backward", lambda self, z, a, da: da * (1 - a))


@pytest.mark.usefixtures("broken_tanh")
def test_an_engine_bug_is_not_blamed_on_torch_without_a_referee():
    trajectory = _training(referees=()).trajectory
    assert trajectory.cause == "arbiter" and not trajectory.ok, trajectory.verdict()
    assert trajectory.arbiter.same_code == ("scratch",)
    assert trajectory.farther is None and trajectory.blame() == "cannot tell which side is off"
    assert "torch is off" not in trajectory.verdict() and "cannot tell" in trajectory.verdict()


@pytest.mark.usefixtures("broken_tanh")
def test_an_engine_bug_is_blamed_on_the_engine_by_jax():
    training = _training(referees=("torch", "scratch", "jax"))      # the pair's own two are passed over
    trajectory = training.trajectory
    assert trajectory.arbiter.referee == "jax" and trajectory.arbiter.independent
    assert trajectory.arbiter.dtype.startswith("float64")
    assert trajectory.farther == "scratch", trajectory.verdict()
    assert trajectory.verdict().endswith("scratch is off")


def test_a_torch_bug_is_blamed_on_torch_by_jax(monkeypatch):
    from twins.torch_backend import TorchBackend

    real = TorchBackend.apply_gradients
    monkeypatch.setattr(TorchBackend, "apply_gradients",
                        lambda self, gradients: real(self, [g * (1 + 1e-6) for g in gradients]))
    trajectory = _training(referees=("jax",)).trajectory
    assert trajectory.arbiter.referee == "jax", trajectory.verdict()
    assert not trajectory.ok and trajectory.farther == "torch", trajectory.verdict()


def test_a_correct_pair_needs_no_referee():
    trajectory = _training(referees=("jax",)).trajectory
    assert trajectory.ok and trajectory.parting_step is None, trajectory.verdict()
