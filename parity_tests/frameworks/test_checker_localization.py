"""Localization with dropout masks and L2 together, across frameworks: two correct backends agree
layer by layer, and a backend wrong in one layer is named by that layer only.

Each layer is run alone in both backends, fed the reference's A_{l−1}, upstream dA_l (the
targets at the output) and dropout mask; torch's, Keras's and JAX's ``layer_trace`` add λ·W_l
through their own autodiff, so a mask or a penalty handled differently shows up here.
"""

from __future__ import annotations

import pytest
from buggy_engines import DropoutMaskMissingInBackward, L2MissingOnLayer2
from cases import FRAMEWORKS, PAIR_IDS, PAIRS, make_case

from judge.parity import localize
from scratch.spec import ModelSpec

DTYPES = ("float64", "float32")


def spec_with_dropout_and_l2(dtype: str) -> ModelSpec:
    return ModelSpec((6, 5, 4, 3), hidden_activation="tanh", dtype=dtype, dropout=0.25, l2=2.0 ** -6)


def expected_names(n_layers: int) -> list[str]:
    """localize's comparisons, layer by layer: Z, A, dZ, dW, db, then dA_{l−1} (none below layer 1)."""
    names = []
    for layer in range(1, n_layers + 1):
        names += [f"Z{layer}", f"A{layer}", f"dZ{layer}", f"dW{layer}", f"db{layer}"]
        names += [f"dA{layer - 1}"] if layer > 1 else []
    return names


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("actual_name, desired_name", PAIRS, ids=PAIR_IDS)
def test_correct_backends_agree_in_every_layer_with_dropout_and_l2(actual_name, desired_name, dtype,
                                                                   global_seed):
    case = make_case(spec_with_dropout_and_l2(dtype), 8, global_seed)
    assert case.masks is not None and any((mask == 0).any() for mask in case.masks)
    desired = case.backend(desired_name)
    results = localize(case.backend(actual_name), desired, desired.trace(case.x, case.targets, case.masks),
                       case.x, case.targets, case.masks, dtype)
    assert [c.name for c in results] == expected_names(case.spec.n_layers)
    assert [c.describe() for c in results if not c.ok] == []


@pytest.mark.deliberate_mismatch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("desired_name", FRAMEWORKS)
@pytest.mark.parametrize("wrong, failing", [
    (DropoutMaskMissingInBackward, [(1, "dZ1"), (1, "dW1"), (1, "db1"), (2, "dZ2"), (2, "dW2"), (2, "db2"),
                                    (2, "dA1")]),
    (L2MissingOnLayer2, [(2, "dW2")]),
], ids=["dropout-mask-missing-in-backward", "l2-missing-on-layer-2"])
def test_a_wrong_layer_is_named_against_a_framework(wrong, failing, desired_name, dtype, global_seed):
    case = make_case(spec_with_dropout_and_l2(dtype), 8, global_seed)
    desired = case.backend(desired_name)
    desired_trace = desired.trace(case.x, case.targets, case.masks)
    results = localize(wrong(case.spec, tensors=case.tensors), desired, desired_trace,
                       case.x, case.targets, case.masks, dtype)
    assert [(c.layer, c.name) for c in results if not c.ok] == failing
