"""The JAX side of ``compare`` (issue 21): your function and its parameter pytree with a declared
spec (``ports.jax_port``) — the shipped example against the shipped weight file, faithful and with
the classic double softmax; a square kernel in the wrong declared layout caught by the faithfulness
check; and every malformed JaxPort refused in one error naming what is wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reports.cli.main import main

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")

import jax.numpy as jnp  # noqa: E402  (after jax's importorskip)

from ports.compare import faithfulness  # noqa: E402
from ports.jax_port import JaxPort, jax_side  # noqa: E402
from ports.reading import PortError  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / "examples" / "mlp_weights.safetensors"
EXAMPLE = ROOT / "examples" / "jax_mlp.py"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Eight MNIST-shaped samples in [0, 1] with labels (the default batch reads MNIST: slower)."""
    rng = np.random.default_rng(5)
    path = tmp_path_factory.mktemp("batch") / "batch.npz"
    np.savez(path, x=rng.uniform(size=(8, 784)), y=rng.integers(0, 10, 8))
    return path


def compare(capsys, data, a, b):
    status = main(["compare", str(a), str(b), "--steps", "2", "--data", str(data)])
    return status, capsys.readouterr().out


def test_the_faithful_jax_mlp_is_the_weight_files_model(capsys, data):
    status, out = compare(capsys, data, WEIGHTS, f"{EXAMPLE}:faithful")
    assert status == 0, out
    assert out.splitlines()[0].startswith("compare: PASS — A and B are one model")
    assert "B's own model reproduces the twin of its reading: 21 quantities" in out


@pytest.mark.deliberate_mismatch
def test_the_double_softmax_of_an_optax_loss_is_named(capsys, data):
    status, out = compare(capsys, data, WEIGHTS, f"{EXAMPLE}:double_softmax")
    headline = out.splitlines()[0]
    assert status == 1, out
    assert headline.startswith("compare: FAIL — B's own code computes something its reading does not, "
                               "explained by double softmax: first loss")
    assert "found: B: double softmax at the loss" in out


SQUARE = {"inputs": 4, "layers": [{"kind": "dense", "units": 4, "activation": "tanh"},
                                  {"kind": "dense", "units": 3, "activation": "softmax"}],
          "loss": "cce", "optimizer": {"name": "momentum", "learning_rate": 0.1, "momentum": 0.9},
          "l2": 0.01, "dtype": "float64"}


def square_params():
    rng = np.random.default_rng(3)
    return {"layers": [{"w": rng.normal(size=(4, 4)), "b": rng.normal(size=4)},
                       {"w": rng.normal(size=(4, 3)), "b": rng.normal(size=3)}]}


def x_at_w(params, x, training):
    """Flax's x @ kernel with kernels (in, out)."""
    hidden = jnp.tanh(x @ params["layers"][0]["w"] + params["layers"][0]["b"])
    return hidden @ params["layers"][1]["w"] + params["layers"][1]["b"]


PATHS = {(layer, name): ("layers", layer - 1, leaf)
         for layer in (1, 2) for name, leaf in (("W", "w"), ("b", "b"))}


def square_port(**fields):
    return JaxPort(**{"spec": SQUARE, "apply": x_at_w, "params": square_params(), "paths": PATHS,
                      "layouts": {"dense": "in_out"}, "own_weights": True, **fields})


def batch():
    rng = np.random.default_rng(4)
    return rng.normal(size=(6, 4)), np.eye(3)[rng.integers(0, 3, 6)]


def test_the_right_layout_reproduces_the_jax_twin_with_l2_and_momentum():
    reading, model = jax_side(square_port(), "square")
    assert reading.spec.optimizer.convention == "optax"          # a JAX side's default convention
    assert np.array_equal(reading.tensors[0]["W"], square_params()["layers"][0]["w"].T)
    rows, note = faithfulness(reading, model, *batch())
    assert not note
    assert len(rows) == 15 and all(row.ok for row in rows), [row.describe() for row in rows if not row.ok]


@pytest.mark.deliberate_mismatch
def test_a_square_kernel_declared_in_the_wrong_layout_fails_the_faithfulness_check():
    """x @ W with W declared (out, in): layer 1's kernel (4, 4) loads silently, and computes Wᵀ."""
    reading, model = jax_side(square_port(layouts={(2, "W"): "in_out"}), "square")
    rows, _ = faithfulness(reading, model, *batch())
    assert not rows[0].ok and rows[0].name == "A_L (training)"


def test_logits_declared_for_probabilities_is_a_double_softmax_finding():
    def probabilities(params, x, training):
        return jax.nn.softmax(x_at_w(params, x, training), axis=-1)

    reading, _ = jax_side(square_port(apply=probabilities), "square")
    assert [finding.cause for finding in reading.findings] == ["double_softmax"]


@pytest.mark.parametrize(("fields", "message"), [
    ({"params": {"layers": [{"w": np.ones((4, 4)), "b": np.ones(4)}, {"w": np.ones((4, 3))}]}},
     "params has no leaf at ('layers', 1, 'b') (layer 2 b)"),
    ({"params": {"layers": [{"w": np.ones((4, 4)), "b": np.ones(4)},
                            {"w": np.ones((3, 4)), "b": np.ones(3)}]}},
     "params['layers'][1]['w'] (layer 2 W, dense, layout in_out) has shape (3, 4), expected (4, 3)"),
    ({"paths": {key: path for key, path in PATHS.items() if key != (1, "b")}}, "no path for (1, 'b')"),
    ({"paths": {**PATHS, (3, "W"): ("extra",)}}, "(3, 'W') is no declared tensor"),
    ({"params": {**square_params(), "scale": np.ones(1)}}, "params leaf ('scale',) is mapped to no declared"),
    ({"layouts": {"dense": "HWIO"}}, "layer 1 W (dense) in layout 'HWIO'; known: out_in, in_out"),
    ({"layouts": {"dense": "in_out", "layer_norm": "in_out"}}, "'layer_norm' is neither a declared tensor"),
    ({"returns": "probabilities"}, "returns: 'probabilities'"),
    ({"apply": "x @ W"}, "apply: expected a function"),
    ({"spec": {**SQUARE, "loss": "hinge"}}, "JaxPort.spec"),
    ({"apply": lambda params, x, training: x @ params["layers"][1]["w"].T}, "your apply raised TypeError"),
])
def test_a_malformed_port_is_one_error_naming_it(fields, message):
    with pytest.raises(PortError) as raised:
        jax_side(square_port(**fields), "square")
    assert message in str(raised.value)


def test_a_malformed_port_exits_2_on_the_command_line(capsys, tmp_path):
    (tmp_path / "port.py").write_text(
        "import numpy as np\nfrom ports.jax_port import JaxPort\n"
        f"import sys; sys.path.insert(0, {str(ROOT / 'examples')!r})\nimport jax_mlp\n\n"
        "def build():\n    params = jax_mlp.init()\n    del params['dense3']['bias']\n"
        "    return JaxPort(jax_mlp.SPEC, jax_mlp.logits, params, jax_mlp.PATHS,\n"
        "                   layouts={'dense': 'in_out'})\n")
    status = main(["compare", str(WEIGHTS), f"{tmp_path / 'port.py'}:build"])
    captured = capsys.readouterr()
    assert status == 2
    assert "params has no leaf at ('dense3', 'bias') (layer 3 b)" in captured.err + captured.out


NORMED = {"inputs": 4, "layers": [{"kind": "dense", "units": 5, "activation": "identity"},
                                  {"kind": "batch_norm", "decay": 0.9, "epsilon": 1e-5,
                                   "running_variance": "biased", "activation": "relu"},
                                  {"kind": "dense", "units": 3, "activation": "softmax"}],
          "loss": "cce", "optimizer": {"name": "sgd", "learning_rate": 0.1}, "dtype": "float64"}


def normed_params():
    rng = np.random.default_rng(6)
    return {"dense1": {"kernel": rng.normal(size=(4, 5)), "bias": rng.normal(size=5)},
            "norm": {"scale": 1 + 0.1 * rng.normal(size=5), "bias": 0.1 * rng.normal(size=5)},
            "dense2": {"kernel": rng.normal(size=(5, 3)), "bias": rng.normal(size=3)}}


def normed_apply(momentum, unbiased=False):
    """Dense → BatchNorm (flax's form: the old average weighted by ``momentum``) → relu → dense."""
    def apply(params, state, x, training):
        z = x @ params["dense1"]["kernel"] + params["dense1"]["bias"]
        if training:
            mean, variance = z.mean(axis=0), z.var(axis=0)
            kept = variance * len(z) / (len(z) - 1) if unbiased else variance
            state = {"mean": momentum * state["mean"] + (1 - momentum) * mean,
                     "var": momentum * state["var"] + (1 - momentum) * kept}
        else:
            mean, variance = state["mean"], state["var"]
        h = (z - mean) / jnp.sqrt(variance + 1e-5) * params["norm"]["scale"] + params["norm"]["bias"]
        return jax.nn.relu(h) @ params["dense2"]["kernel"] + params["dense2"]["bias"], state
    return apply


def normed_port(**fields):
    state = {"mean": np.full(5, 0.2), "var": np.full(5, 1.5)}
    paths = {(1, "W"): ("dense1", "kernel"), (1, "b"): ("dense1", "bias"), (2, "gamma"): ("norm", "scale"),
             (2, "beta"): ("norm", "bias"), (3, "W"): ("dense2", "kernel"), (3, "b"): ("dense2", "bias")}
    return JaxPort(**{"spec": NORMED, "apply": normed_apply(0.9), "params": normed_params(), "paths": paths,
                      "layouts": {"dense": "in_out"}, "own_weights": True, "state": state,
                      "state_paths": {(2, "running_mean"): "mean", (2, "running_var"): "var"}, **fields})


def test_a_batch_norm_function_with_its_state_reproduces_the_jax_twin():
    """apply(params, state, x, training) -> (out, new_state): the running statistics are read from the
    state, loaded into it, and moved by a step exactly as the twin moves its own."""
    reading, model = jax_side(normed_port(), "normed")
    assert [(mean[0], variance[0]) for mean, variance in reading.statistics] == [(0.2, 1.5)]
    x, _ = batch()
    rows, note = faithfulness(reading, model, x, np.eye(3)[np.arange(6) % 3])
    assert not note
    names = [row.name for row in rows]
    assert "running mean 2 after 1 step" in names and "running variance 2 after 1 step" in names
    assert all(row.ok for row in rows), [row.describe() for row in rows if not row.ok]


@pytest.mark.deliberate_mismatch
@pytest.mark.parametrize("apply, off", [
    # flax's default momentum 0.99 where the spec declares 0.9; torch's unbiased estimator
    (normed_apply(0.99), ["running mean 2 after 1 step", "running variance 2 after 1 step"]),
    (normed_apply(0.9, unbiased=True), ["running variance 2 after 1 step"]),
], ids=["momentum", "estimator"])
def test_running_statistics_that_move_otherwise_than_declared_fail_the_faithfulness_check(apply, off):
    """Only the statistics after a step show it: the outputs, loss, gradients and parameters agree."""
    reading, model = jax_side(normed_port(apply=apply), "normed")
    x, _ = batch()
    rows, _ = faithfulness(reading, model, x, np.eye(3)[np.arange(6) % 3])
    assert [row.name for row in rows if not row.ok] == off


@pytest.mark.parametrize(("fields", "message"), [
    ({"state_paths": {(2, "running_mean"): "mean"}}, "no path for (2, 'running_var')"),
    ({"state_paths": {(2, "running_mean"): "mean", (2, "running_var"): "variance"}},
     "state has no leaf at ('variance',)"),
    ({"state": {"mean": np.zeros(5), "var": np.ones(4)}},
     "(layer 2 running_var) has shape (4,), expected (5,)"),
    ({"state": {"mean": np.zeros(5), "var": np.ones(5), "count": np.zeros(1)}},
     "state leaf ('count',) is mapped to no running statistic"),
])
def test_a_malformed_state_is_one_error_naming_it(fields, message):
    with pytest.raises(PortError) as raised:
        jax_side(normed_port(**fields), "normed")
    assert message in str(raised.value)


@pytest.mark.deliberate_mismatch
def test_an_own_optimizer_without_the_declared_momentum_fails_at_the_second_step():
    """The spec declares SGD with momentum 0.9; the port's own optax optimizer has none. The first
    update of SGD with momentum is plain SGD's: only the second step shows it."""
    reading, model = jax_side(square_port(optimizer=optax.sgd(0.1)), "square")
    rows, _ = faithfulness(reading, model, *batch())
    off = [row.name for row in rows if not row.ok]
    assert off and all(name.endswith("after 2 steps") for name in off), off
