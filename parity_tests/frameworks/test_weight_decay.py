"""Weight decay, coupled and decoupled, in every twin that has the form (``OptimizerSpec.weight_decay``).

torch's ``weight_decay=`` is coupled (g + λ·θ, through every buffer) and ``AdamW`` decoupled;
Keras 3's ``weight_decay=`` is decoupled in every optimizer; optax chains ``add_decayed_weights``
before (coupled) or after (decoupled) the optimizer. Each form a twin has must train to the
NumPy engine's parameters within ``judge.tolerances``; each form it lacks is refused by name.

Each case checks that it can fail: the engine trained without the decay, and with the other
form, ends more than 5× the parameter tolerance away — except for plain SGD, where the two forms
are one step in exact arithmetic (θ − η(g + λθ) = θ(1 − ηλ) − ηg): that fact is asserted instead.
λ = 0.0371 is not exact in float32, so a twin rounding it (Keras does, even for float64 weights:
``scratch.optimizers`` mirrors that) or ignoring it diverges.
"""

from __future__ import annotations

import dataclasses

import pytest
from cases import make_case
from test_hyperparameters import assert_twin_matches, optimizer_for, parameter_distance, spec_for, train

from judge.tolerances import tolerance
from scratch.errors import BackendError
from scratch.spec import OptimizerSpec

DECAY = 0.0371
# (twin, form) → the optimizers the twin has that form for, per convention it trains
HAS_FORM = {("torch", "coupled"): ("sgd", "momentum", "rmsprop", "adam"), ("torch", "decoupled"): ("adam",),
            ("keras", "coupled"): (), ("keras", "decoupled"): ("sgd", "momentum", "rmsprop", "adam"),
            ("jax", "coupled"): ("sgd", "momentum", "rmsprop", "adam"),
            ("jax", "decoupled"): ("sgd", "momentum", "rmsprop", "adam")}
CONVENTION = {"torch": "torch", "keras": "keras", "jax": "optax"}
CASES = [(twin, name, form) for (twin, form), names in HAS_FORM.items() for name in names]
REFUSED = [("torch", "momentum", "decoupled"), ("torch", "rmsprop", "decoupled"),
           ("keras", "adam", "coupled"), ("keras", "sgd", "coupled")]


def decayed(name: str, convention: str, form: str | None) -> OptimizerSpec:
    optimizer = optimizer_for(name, convention)
    if form is None:
        return optimizer
    return dataclasses.replace(optimizer, weight_decay=DECAY, decoupled_decay=form == "decoupled")


@pytest.mark.parametrize("dtype", ["float64", pytest.param("float32", marks=pytest.mark.slow)])
@pytest.mark.parametrize("twin,name,form", CASES, ids=[f"{t}-{n}-{f}" for t, n, f in CASES])
def test_twin_decays_as_the_engine(twin, name, form, dtype, global_seed, repro):
    convention = CONVENTION[twin]
    case = make_case(spec_for(decayed(name, convention, form), dtype, global_seed), 40, global_seed)
    run, _ = train(case, "scratch")
    bound = tolerance(dtype, "parameters")
    without, _ = train(make_case(spec_for(decayed(name, convention, None), dtype, global_seed), 40,
                                 global_seed), "scratch")
    assert parameter_distance(without, run) > 5 * bound, "λ too small to be seen"
    other = "coupled" if form == "decoupled" else "decoupled"
    other_run, _ = train(make_case(spec_for(decayed(name, convention, other), dtype, global_seed), 40,
                                   global_seed), "scratch")
    if name != "sgd":                              # plain SGD: one step either way (below)
        assert parameter_distance(other_run, run) > 5 * bound, f"{form} and {other} too close to tell"
    assert_twin_matches(case, twin, repro)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_plain_sgd_decays_alike_in_both_forms(dtype, global_seed):
    """θ − η(g + λθ) = θ(1 − ηλ) − ηg: the forms differ by rounding only (torch's convention, where
    λ is used as given; Keras's decoupled form rounds λ to float32 first)."""
    runs = [train(make_case(spec_for(decayed("sgd", "torch", form), dtype, global_seed), 40, global_seed),
                  "scratch")[0] for form in ("coupled", "decoupled")]
    assert parameter_distance(*runs) < tolerance(dtype, "parameters")


@pytest.mark.parametrize("twin,name,form", REFUSED, ids=[f"{t}-{n}-{f}" for t, n, f in REFUSED])
def test_twin_refuses_a_form_it_lacks(twin, name, form, global_seed):
    case = make_case(spec_for(decayed(name, CONVENTION[twin], form), "float64", global_seed), 8, global_seed)
    with pytest.raises(BackendError, match="decoupled" if twin == "torch" else "coupled"):
        case.backend(twin).train_step(case.x, case.targets)
