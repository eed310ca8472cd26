"""The heat map's columns: a layer's forward quantities, then its backward ones, with every declared
tensor's gradient under its own name (``d<name>``: a BatchNorm's dgamma, dbeta beside a dense
layer's dW, db), in the registry's order — one column per quantity, one row per layer."""

from __future__ import annotations

from reports.render.heatmap import ORDER, grid
from scratch.layer_specs import GRADIENTS


def row(quantity: str, layer: int | None) -> dict:
    return {"quantity": quantity, "layer": layer, "dtype": "float64", "pair": "torch vs scratch"}


def test_every_declared_gradient_is_a_column_after_dz_in_registry_order():
    assert GRADIENTS == ("dW", "db", "dgamma", "dbeta", "dalpha", "dE", "dweight_ih", "dweight_hh",
                         "dbias_ih", "dbias_hh", "dbias")
    assert ORDER == ("Z", "A", "loss", "dA", "dZ", *GRADIENTS)


def test_a_batch_norm_layer_fills_its_own_gamma_and_beta_columns():
    rows = [row(name, layer) for layer, names in ((1, ("dbeta", "dgamma", "dZ", "Z")), (2, ("db", "dW", "Z")))
            for name in (f"{stem}{layer}" for stem in names)] + [row("loss", None)]
    labels, columns, cells = grid(rows)
    assert labels == ["1", "2", "—"]
    assert columns == ["Z", "loss", "dZ", "dW", "db", "dgamma", "dbeta"]
    assert cells[("1", "dgamma")]["quantity"] == "dgamma1" and ("1", "dW") not in cells
    assert cells[("2", "dW")]["quantity"] == "dW2" and ("2", "dgamma") not in cells
