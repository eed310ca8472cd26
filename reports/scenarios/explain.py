"""Scenario: the backprop study (``reports.explain.walk``) on the catalog's ``seed-002`` net
(``reports.scenarios.common.SEED_NET``), LeCun-normal init, 8 MNIST samples, float64 — the scratch
line, the torch autograd nodes and the TensorFlow gradient ops behind every gradient, with their
differences."""

from __future__ import annotations

import numpy as np

from reports.scenarios.common import SEED_NET, Context
from scratch.initializers import initialize
from scratch.model import MLP
from scratch.spec import ModelSpec

BATCH = 8


def run(ctx: Context) -> list[dict]:
    from reports.explain.walk import explain

    spec = ModelSpec(SEED_NET, init="lecun_normal", seed=0, dtype="float64")
    data = ctx.mnist(spec.dtype)
    weights, biases = initialize(spec.init, spec.layer_sizes, spec.seed, np.dtype(spec.dtype))
    targets = MLP(spec, weights, biases).targets(data.y_train[:BATCH])
    return explain(spec, weights, biases, data.x_train[:BATCH], targets)
