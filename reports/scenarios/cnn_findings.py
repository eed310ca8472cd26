"""The convolutional conventions where the frameworks differ, each with its effect measured on
a convolutional catalog model (the report's row: ``lenet5``) at report time (float64, inference
mode, the first n MNIST digits).

Every measurement is the normwise relative error of the port's output against the correct one,
e = max|a − d| / max|d| (``judge.parity.relative_error``), judged by :func:`effect`:
``bit-identical`` (e = 0), ``rounding`` (0 < e ≤ the dtype's forward bound) or ``moves`` (e
above it: the convention matters).

* **padding** — ``same`` at stride 2 is TensorFlow's split: total padding
  p = max((⌈H/s⌉ − 1)·s + k − H, 0), ⌊p/2⌋ before and the rest after; for 28×28, k = 5, s = 2
  that is (1, 2, 1, 2). ``nn.Conv2d(padding=2, stride=2)``, the naive torch port, pads (2, 2, 2, 2):
  the same output shape, every window one pixel up and left.
* **flatten** — after a convolution, channels-first (torch, NCHW) flattens (C, H, W), channels-last
  (Keras, NHWC) (H, W, C). The dense layer after it sees the same numbers in another order unless
  its columns are permuted: W′[:, j] = W[:, π(j)], π the (C, H, W) index of the j-th (H, W, C) one.
* **batchnorm** — the running statistics r ← ρ·r + (1 − ρ)·batch statistic: torch's ``momentum=0.1``
  is ρ = 0.9, ε = 1e-5, and it stores the unbiased variance n/(n − 1)·σ²; Keras's ``momentum=0.99``
  is ρ = 0.99, ε = 1e-3, the biased σ². Measured after N SGD steps of a LeNet-5 with a BatchNorm
  after each convolution, one field at a time and all three, against torch's convention; and each
  twin against the engine in its own framework's convention.
* **kernel layout** — torch's kernels are OIHW, Keras's HWIO = OIHW.transpose(2, 3, 1, 0). A port
  that reshapes instead of transposing, or swaps the kernel's H and W axes, computes with a
  scrambled kernel of the right shape.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from judge.parity import relative_error
from judge.tolerances import tolerance
from reports.scenarios.common import backend, number
from scratch import catalog
from scratch.batching import batches, training_plan
from scratch.layer_specs import BatchNormSpec, FlattenSpec
from scratch.layers.conv import padding_amounts
from scratch.model import Network
from scratch.optimizers import make_optimizer
from scratch.spec import ModelSpec, OptimizerSpec

DTYPE = "float64"
TORCH_BN = dict(decay=0.9, epsilon=1e-5, running_variance="unbiased")
KERAS_BN = dict(decay=0.99, epsilon=1e-3, running_variance="biased")
BATCHNORM_SGD = OptimizerSpec("sgd", learning_rate=0.05)
BATCHNORM_BATCH = 16
MODEL = "lenet5"                          # the model the report measures them on


def effect(error: float | None, dtype: str = DTYPE) -> str:
    """``bit-identical``, ``rounding`` (within the forward bound of ``dtype``) or ``moves``
    (beyond it; also a non-finite error, ``None``)."""
    if error is not None and error == 0:
        return "bit-identical"
    if error is not None and error <= tolerance(dtype, "forward"):
        return "rounding"
    return "moves"


@dataclass(frozen=True)
class FindingSettings:
    samples: int = 64                     # the findings' batch: the first ``samples`` MNIST digits
    batchnorm_steps: int = 20             # training steps before the BatchNorm finding compares


def base_spec(model: str = MODEL) -> ModelSpec:
    """The catalog model ``model`` (a convolutional MNIST net) without its dropout layers
    (inference ignores them), float64."""
    spec = catalog.spec(model)
    return spec.replace(
        layers=tuple(layer for layer in spec.layers if layer.kind != "dropout"), dtype=DTYPE, epochs=1
    )


def row(finding: str, case: str, quantity: str, actual, desired, evidence: str = "engine") -> dict:
    """One measurement: ``actual`` (the port) against ``desired`` (the correct computation)."""
    actual, desired = np.asarray(actual, np.float64), np.asarray(desired, np.float64)
    error = relative_error(actual, desired)
    return {
        "finding": finding,
        "case": case,
        "quantity": quantity,
        "evidence": evidence,
        "dtype": DTYPE,
        "rel_error": number(error),
        "max_abs": number(np.max(np.abs(actual - desired))),
        "tolerance": tolerance(DTYPE, "forward"),
        "effect": effect(number(error)),
    }


def _outputs(network: Network, x: np.ndarray, layers: tuple[int, ...]) -> dict[int, np.ndarray]:
    forward = network.forward(x, training=False)
    return {
        layer: forward.z[layer - 1] if layer < network.spec.n_layers else forward.a[-1] for layer in layers
    }


def _first_layer_of(spec: ModelSpec, kind: str) -> int:
    return next(index + 1 for index, layer in enumerate(spec.numbered_layers) if layer.kind == kind)


def padding(ctx, x: np.ndarray, model: str = MODEL) -> list[dict]:
    spec = base_spec(model)
    conv = spec.layers[0]
    same = spec.replace(layers=(dataclasses.replace(conv, strides=2, padding="same"), *spec.layers[1:]))
    split = padding_amounts("same", x.shape[2:], conv.kernel_size, 2, 1)
    half = conv.kernel_size[0] // 2
    symmetric_amounts = (half,) * 4
    symmetric = same.replace(
        layers=(dataclasses.replace(conv, strides=2, padding=symmetric_amounts), *spec.layers[1:])
    )
    right = Network(same)
    wrong = Network(symmetric, right.weights, right.biases)
    last = spec.n_layers
    want, got = _outputs(right, x, (1, last)), _outputs(wrong, x, (1, last))
    case = (
        f"stride 2, kernel {conv.kernel_size[0]}×{conv.kernel_size[1]}: symmetric {symmetric_amounts} "
        f"(nn.Conv2d(padding={half})) instead of TensorFlow's {split} (top, bottom, left, right)"
    )
    rows = [
        row("padding", case, "Z1 (conv output)", got[1], want[1]),
        row("padding", case, f"A{last} (network output)", got[last], want[last]),
    ]
    if "torch" in ctx.backends:
        twin = backend("torch", same, right.tensors).inference(x)
        rows.append(
            row(
                "padding",
                f"the torch twin's ZeroPad2d{(split[2], split[3], split[0], split[1])} + "
                "padding=0 convolution against the engine's `same`",
                f"A{last} (network output)",
                twin,
                want[last],
                evidence="torch twin",
            )
        )
    return rows


def flatten(ctx, x: np.ndarray, model: str = MODEL) -> list[dict]:
    first = base_spec(model)
    position = next(i for i, layer in enumerate(first.layers) if layer.kind == "flatten")
    last_ = first.replace(
        layers=(*first.layers[:position], FlattenSpec("channels_last"), *first.layers[position + 1 :])
    )
    right = Network(first)
    dense = _first_layer_of(first, "dense")
    index = first.parameter_layers.index(dense)
    channels, height, width = first.layer_shapes[dense - 2]
    permutation = (
        np.arange(channels * height * width).reshape(channels, height, width).transpose(1, 2, 0).ravel()
    )
    permuted = [w if i != index else w[:, permutation] for i, w in enumerate(right.weights)]
    last = first.n_layers
    want = _outputs(right, x, (dense, last))
    unpermuted = _outputs(Network(last_, right.weights, right.biases), x, (dense, last))
    fixed = _outputs(Network(last_, permuted, right.biases), x, (dense, last))
    rows = []
    for case, got in (
        ("channels-last Flatten, the dense weights as they are", unpermuted),
        (f"channels-last Flatten, dense W{dense}'s columns permuted (C, H, W) → (H, W, C)", fixed),
    ):
        rows.append(row("flatten", case, f"Z{dense} (first dense layer)", got[dense], want[dense]))
        rows.append(row("flatten", case, f"A{last} (network output)", got[last], want[last]))
    return rows


def batchnorm_spec(model: str = MODEL, **settings) -> ModelSpec:
    """``model`` with a BatchNorm after each convolution (conv → BN → ReLU), float64, SGD."""
    layers = []
    for layer in base_spec(model).layers:
        if layer.kind == "conv2d":
            layers += [
                dataclasses.replace(layer, activation="identity"),
                BatchNormSpec(**settings, activation="relu"),
            ]
        else:
            layers.append(layer)
    return base_spec(model).replace(layers=tuple(layers), optimizer=BATCHNORM_SGD, batch_size=BATCHNORM_BATCH)


def _trained(spec: ModelSpec, start: Network, x: np.ndarray, targets: np.ndarray) -> Network:
    network = Network(spec, start.weights, start.biases)
    optimizer = make_optimizer(spec.optimizer)
    for step, x_batch, y_batch in batches(x, targets, training_plan(spec, len(x))):
        network.train_step(x_batch, y_batch, optimizer, step.masks)
    return network


def statistics_rows(case: str, got: list, want: list, evidence: str = "engine") -> list[dict]:
    """The running means and variances of every BatchNorm layer, ``got`` against ``want``: the
    largest normwise error over the layers, one row each."""
    rows = []
    for which, name in ((0, "running mean"), (1, "running variance")):
        pairs = [
            (np.asarray(g[which], np.float64), np.asarray(w[which], np.float64))
            for g, w in zip(got, want, strict=True)
        ]
        worst = max(pairs, key=lambda pair: relative_error(*pair))
        rows.append(row("batchnorm", case, name, *worst, evidence=evidence))
    return rows


def batchnorm(ctx, x: np.ndarray, train_x: np.ndarray, train_labels: np.ndarray,
              model: str = MODEL) -> list[dict]:
    torch_spec = batchnorm_spec(model, **TORCH_BN)
    start = Network(torch_spec)
    targets = start.targets(train_labels)
    steps = len(list(training_plan(torch_spec, len(train_x))))
    runs = {}                          # the engine trained once per BatchNorm convention

    def trained(settings: dict) -> Network:
        key = tuple(sorted(settings.items()))
        if key not in runs:
            runs[key] = _trained(batchnorm_spec(model, **settings), start, train_x, targets)
        return runs[key]

    reference = trained(TORCH_BN)
    want = reference.inference_outputs(x)[1]
    variants = {
        f"ρ {KERAS_BN['decay']} instead of {TORCH_BN['decay']}": dict(TORCH_BN, decay=KERAS_BN["decay"]),
        f"ε {KERAS_BN['epsilon']:g} instead of {TORCH_BN['epsilon']:g}": dict(
            TORCH_BN, epsilon=KERAS_BN["epsilon"]
        ),
        "biased running variance instead of unbiased": dict(TORCH_BN, running_variance="biased"),
        "all three: Keras's BatchNormalization defaults": KERAS_BN,
    }
    rows = []
    for case, settings in variants.items():
        network = trained(settings)
        case = f"{case}, after {steps} steps"
        rows += statistics_rows(case, network.statistics, reference.statistics)
        rows.append(row("batchnorm", case, "inference output", network.inference_outputs(x)[1], want))
    for twin, settings, label in (("torch", TORCH_BN, "torch's"), ("keras", KERAS_BN, "Keras's")):
        if twin not in ctx.backends:
            continue
        spec = batchnorm_spec(model, **settings)
        engine = trained(settings)
        framework = backend(twin, spec, start.tensors)
        framework.fit(train_x, targets, training_plan(spec, len(train_x)))
        case = f"the {twin} twin against the engine, both in {label} convention, after {steps} steps"
        rows += statistics_rows(case, framework.statistics(), engine.statistics, evidence=f"{twin} twin")
        rows.append(
            row(
                "batchnorm",
                case,
                "inference output",
                framework.inference(x),
                engine.inference_outputs(x)[1],
                evidence=f"{twin} twin",
            )
        )
    return rows


def kernel_layout(ctx, x: np.ndarray, model: str = MODEL) -> list[dict]:
    spec = base_spec(model)
    right = Network(spec)
    convs = [
        i for i, layer in enumerate(spec.parameter_layers) if spec.numbered_layers[layer - 1].kind == "conv2d"
    ]
    last = spec.n_layers
    want = _outputs(right, x, (1, last))
    ports = {
        "HWIO kernels reshaped to OIHW (no transpose)": lambda w: np.ascontiguousarray(
            w.transpose(2, 3, 1, 0)
        ).reshape(w.shape),
        "HWIO kernels transposed (3, 2, 1, 0): H and W swapped": lambda w: np.ascontiguousarray(
            w.transpose(2, 3, 1, 0).transpose(3, 2, 1, 0)
        ),
        "HWIO kernels transposed (3, 2, 0, 1): the correct inverse": lambda w: np.ascontiguousarray(
            w.transpose(2, 3, 1, 0).transpose(3, 2, 0, 1)
        ),
    }
    rows = []
    for case, port in ports.items():
        weights = [port(w) if i in convs else w for i, w in enumerate(right.weights)]
        got = _outputs(Network(spec, weights, right.biases), x, (1, last))
        rows.append(row("kernel layout", case, "Z1 (conv output)", got[1], want[1]))
        rows.append(row("kernel layout", case, f"A{last} (network output)", got[last], want[last]))
    if "keras" in ctx.backends:
        twin = backend("keras", spec, right.tensors).inference(x)
        rows.append(
            row(
                "kernel layout",
                "the Keras twin (HWIO kernels, NHWC maps) against the engine",
                f"A{last} (network output)",
                twin,
                want[last],
                evidence="keras twin",
            )
        )
    return rows


def run(ctx, model: str, settings: FindingSettings) -> dict:
    """Every finding measured on the catalog model ``model`` (a convolutional MNIST net)."""
    data = ctx.mnist(DTYPE)
    n = settings.samples
    x = data.x_train[:n].reshape(n, 1, 28, 28)
    train_n = settings.batchnorm_steps * BATCHNORM_BATCH
    train_x = data.x_train[:train_n].reshape(train_n, 1, 28, 28)
    rows = (
        padding(ctx, x, model)
        + flatten(ctx, x, model)
        + batchnorm(ctx, x, train_x, data.y_train[:train_n], model)
        + kernel_layout(ctx, x, model)
    )
    return {
        "model": model,
        "dtype": DTYPE,
        "data": f"MNIST, first {n} training digits; BatchNorm trained on the first "
        f"{train_n} in batches of {BATCHNORM_BATCH} (SGD η = "
        f"{BATCHNORM_SGD.learning_rate:g})",
        "rows": rows,
    }
