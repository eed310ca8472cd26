"""The statements the study quotes for each quantity (``reports.study.formulas``): an array written
in place is a statement that computes it, and a row quotes only the statements its step ran."""

from __future__ import annotations

import numpy as np

from reports.explain.walk import executed_statements
from reports.study.formulas import formula, intermediates
from reports.study.run import study_run
from scratch.activations import Softmax
from scratch.layer_specs import BatchNormSpec, DenseSpec
from scratch.model import Network
from scratch.spec import ModelSpec


def test_an_in_place_write_is_quoted():
    lines = formula(Softmax, "A").lines
    assert "np.exp(e, out=e)" in lines and lines.index("np.exp(e, out=e)") == 1, lines  # shift, exp, divide


def test_batch_norm_quotes_the_batch_statistics_it_ran_not_the_running_ones():
    spec = ModelSpec(inputs=5, layers=(DenseSpec(4, "identity"), BatchNormSpec(activation="relu"),
                                       DenseSpec(3, "softmax")), dtype="float64")
    x, labels = np.random.default_rng(0).normal(size=(6, 5)), np.arange(6) % 3
    run = study_run(spec, Network(spec).tensors, x, labels)
    declared = next(item for item in intermediates(run) if item.name == "Z2")
    assert "running_mean" in declared.line, "the class declares both branches"
    ran = executed_statements(run.network, run.forward, run.targets, x)
    quoted = declared.that_ran(ran)
    assert quoted.line and "running_mean" not in quoted.line, quoted.line
    backward_only = declared.that_ran(executed_statements(run.network, run.forward, run.targets))
    assert backward_only.line == declared.line, "without the forward pass traced nothing is filtered"
