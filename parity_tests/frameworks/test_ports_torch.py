"""The torch side of ``compare`` (issue 21): a user's ``nn.Module``, loss and optimizer read into a
spec (``ports.torch_reading``), and the NumPy engine built from that reading reproducing what the
user's own module computes (``ports.torch_model.TorchModel``) — outputs in both modes, the loss,
every gradient and one optimizer step — at the float64 floor; then what must be refused."""

from __future__ import annotations

import numpy as np
import pytest

from judge.optimizer_state import canonical_gradients
from judge.parity import relative_error
from judge.tolerances import tolerance
from ports.reading import PortError
from twins.backends import make_backend

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional

from ports.torch_port import read_torch, torch_side  # noqa: E402  (after torch's importorskip)


class ConvNet(nn.Module):
    """A custom module (the fx path): conv → BatchNorm → F.relu → max pool → ZeroPad2d + stride-2
    conv (TensorFlow's "same" split) → x.view(x.size(0), -1) → dense."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4, momentum=0.2, eps=1e-3)
        self.pool = nn.MaxPool2d(2)
        self.down = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(4, 3, 3, stride=2))
        self.head = nn.Linear(3 * 2 * 2, 3)

    def forward(self, x):
        x = self.pool(F.relu(self.norm(self.conv(x))))
        x = torch.tanh(self.down(x))
        return self.head(x.view(x.size(0), -1))


class ChannelsLastNet(nn.Module):
    """Flatten after permute(0, 2, 3, 1): Keras's order, as a port from Keras writes it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding="same")
        self.head = nn.Linear(3 * 8 * 8, 2)

    def forward(self, x):
        x = F.leaky_relu(self.conv(x), 0.1)
        return F.softmax(self.head(torch.flatten(x.permute(0, 2, 3, 1), 1)), dim=1)


class FunctionalPools(nn.Module):
    """F.max_pool2d, F.avg_pool2d and x.mean(dim=(2, 3)): the functional spellings of the pools."""

    def __init__(self):
        super().__init__()
        self.conv, self.conv2, self.head = nn.Conv2d(2, 4, 3, padding=1), nn.Conv2d(4, 3, 3), nn.Linear(3, 2)

    def forward(self, x):
        x = F.avg_pool2d(F.max_pool2d(torch.relu(self.conv(x)), 2), kernel_size=2, stride=1)
        return self.head(torch.tanh(self.conv2(x)).mean(dim=(2, 3)))


class PaddedPool(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.head = nn.Conv2d(2, 3, 3), nn.Linear(3 * 4 * 4, 2)

    def forward(self, x):
        return self.head(torch.flatten(F.max_pool2d(self.conv(x), 2, padding=1), 1))


class ChannelMean(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.head = nn.Conv2d(2, 3, 3), nn.Linear(6 * 6, 2)

    def forward(self, x):
        return self.head(torch.flatten(self.conv(x).mean(dim=1), 1))


class GeluNet(nn.Module):
    """F.gelu in both forms, read off the traced graph."""

    def __init__(self):
        super().__init__()
        self.one, self.two, self.out = nn.Linear(4, 6), nn.Linear(6, 5), nn.Linear(5, 3)

    def forward(self, x):
        return self.out(F.gelu(self.two(F.gelu(self.one(x), approximate="tanh"))))


def mlp():
    return nn.Sequential(nn.Linear(4, 6), nn.LeakyReLU(0.2), nn.Dropout(0.3),
                         nn.Sequential(nn.Linear(6, 5), nn.LayerNorm(5), nn.Tanh()), nn.Linear(5, 3))


def pooled():
    return nn.Sequential(nn.Conv2d(2, 3, 3), nn.PReLU(3, init=0.1), nn.AvgPool2d(2, stride=1),
                         nn.BatchNorm2d(3), nn.Sigmoid(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(3, 1))


# id → (module, inputs, loss, optimizer, the stack it reads as, loss, optimizer name)
CASES = {
    "mlp-sequential": (mlp, None, nn.CrossEntropyLoss,
                       lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
                       "4 → dense(6, leaky_relu) → dropout(0.3) → dense(5, identity) → "
                       "layer_norm(ε=1e-05, tanh) → dense(3, softmax)", "cce", "momentum"),
    "cnn-fx": (ConvNet, (2, 8, 8), nn.CrossEntropyLoss, lambda p: torch.optim.SGD(p, lr=0.1),
               "2×8×8 → conv2d(4, 3×3, same, identity) → batch_norm(ρ=0.8, ε=0.001, unbiased, relu) → "
               "max_pool2d(2) → conv2d(3, 3×3, s2, same, tanh) → flatten(channels_first) → "
               "dense(3, softmax)", "cce", "sgd"),
    "cnn-channels-last": (ChannelsLastNet, (2, 8, 8), nn.MSELoss,
                          lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, momentum=0.5),
                          "2×8×8 → conv2d(3, 3×3, same, leaky_relu) → flatten(channels_last) → "
                          "dense(2, softmax)", "mse", "rmsprop"),
    "cnn-global-pool": (pooled, (2, 8, 8), nn.BCEWithLogitsLoss, lambda p: torch.optim.Adam(p, lr=0.01),
                        "2×8×8 → conv2d(3, 3×3, valid, identity) → prelu(per_channel, α₀=0.1) → "
                        "avg_pool2d(2, s1) → batch_norm(ρ=0.9, ε=1e-05, unbiased, sigmoid) → "
                        "global_avg_pool2d → dense(1, sigmoid)", "bce", "adam"),
    "mlp-gelu": (lambda: nn.Sequential(nn.Linear(4, 6), nn.GELU(), nn.Linear(6, 5),
                                       nn.GELU(approximate="tanh"), nn.Linear(5, 3)),
                 None, nn.CrossEntropyLoss,
                 lambda p: torch.optim.SGD(p, lr=0.1),
                 "4 → dense(6, gelu) → dense(5, gelu_tanh) → dense(3, softmax)", "cce", "sgd"),
    "cnn-functional-pools": (FunctionalPools, (2, 8, 8), nn.CrossEntropyLoss,
                             lambda p: torch.optim.SGD(p, lr=0.1),
                             "2×8×8 → conv2d(4, 3×3, same, relu) → max_pool2d(2) → avg_pool2d(2, s1) → "
                             "conv2d(3, 3×3, valid, tanh) → global_avg_pool2d → dense(2, softmax)",
                             "cce", "sgd"),
    "fx-gelu": (GeluNet, None, nn.CrossEntropyLoss, lambda p: torch.optim.SGD(p, lr=0.1),
                "4 → dense(6, gelu_tanh) → dense(5, gelu) → dense(3, softmax)", "cce", "sgd"),
    # weight decay on every parameter: coupled (SGD's weight_decay=) and decoupled (AdamW)
    "mlp-sgd-weight-decay": (mlp, None, nn.CrossEntropyLoss,
                             lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=0.05),
                             "4 → dense(6, leaky_relu) → dropout(0.3) → dense(5, identity) → "
                             "layer_norm(ε=1e-05, tanh) → dense(3, softmax)", "cce", "momentum"),
    "cnn-adamw": (pooled, (2, 8, 8), nn.BCEWithLogitsLoss,
                  lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1),
                  "2×8×8 → conv2d(3, 3×3, valid, identity) → prelu(per_channel, α₀=0.1) → "
                  "avg_pool2d(2, s1) → batch_norm(ρ=0.9, ε=1e-05, unbiased, sigmoid) → "
                  "global_avg_pool2d → dense(1, sigmoid)", "bce", "adam"),
}


def data(reading, m=6):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((m, *reading.spec.input_shape))
    units = reading.spec.layers[-1].units
    if reading.spec.loss == "cce":
        return x, np.eye(units)[rng.integers(0, units, m)]
    if reading.spec.loss == "bce":
        return x, rng.integers(0, 2, (m, 1)).astype(float)
    return x, rng.uniform(0, 1, (m, units))


def close(got, want, kind, floor=0.0):
    error = relative_error(np.asarray(got), np.asarray(want), floor)
    assert error <= tolerance("float64", kind), f"{kind}: relative error {error:.3g}"


def engine_reproduces(reading, model, x, y):
    """The NumPy engine built from the reading against the user's module: A_L in inference and
    training mode, the loss, every gradient, and the tensors and running statistics after a step.
    A bias that a BatchNorm right after cancels (``spec.cancelled_biases``) has the true gradient 0:
    both hold rounding residue, measured against the size of its layer's kernel gradient."""
    twin = make_backend("scratch", reading.spec, tensors=reading.tensors, statistics=reading.statistics)
    close(model.outputs(x, training=False), twin.inference(x), "forward")
    trace = twin.trace(x, y)
    close(model.outputs(x, training=True), trace[f"A{reading.spec.n_layers}"], "forward")
    loss, gradients = model.loss_and_gradients(x, y)
    close(loss, trace["loss"], "forward")
    spec = reading.spec
    places = [(number, name) for number, names in zip(spec.parameter_layers, spec.parameter_names,
                                                      strict=True) for name in names]
    for (number, name), got, want in zip(places, gradients, canonical_gradients(trace, spec), strict=True):
        cancelled = name == "b" and number in spec.cancelled_biases
        floor = np.abs(trace[f"dW{number}"]).max() if cancelled else 0.0
        close(got, want, "gradient", floor)
    tensors, statistics = model.step(x, y)
    twin.train_step(x, y)
    for got, want in zip(tensors, twin.tensors(), strict=True):
        for name in want:
            close(got[name], want[name], "parameters")
    for got, want in zip(statistics, twin.statistics(), strict=True):
        close(got[0], want[0], "forward")
        close(got[1], want[1], "forward")


@pytest.mark.parametrize("case", CASES)
def test_reading_of_a_torch_module_is_what_it_computes(case):
    build, inputs, loss, optimizer, stack, loss_name, optimizer_name = CASES[case]
    torch.manual_seed(0)
    module = build().double()
    reading, model = read_torch(module, inputs=inputs, loss=loss(), optimizer=optimizer,
                                weights_given=True, source=case)
    spec = reading.spec
    assert spec.describe_stack() == stack
    assert (spec.loss, spec.optimizer.name, spec.optimizer.convention, spec.dtype) == \
        (loss_name, optimizer_name, "torch", "float64")
    assert reading.given == {"weights", "loss", "optimizer"} and not reading.findings
    x, y = data(reading)
    before = [tuple(map(np.copy, pair)) for pair in model.statistics()]
    tracked = [norm.num_batches_tracked.item() for norm in model.norms]
    engine_reproduces(reading, model, x, y)
    if model.norms:                     # outputs and gradients left them; the step moved them
        assert [norm.num_batches_tracked.item() for norm in model.norms] == [t + 1 for t in tracked]
        assert not np.array_equal(model.statistics()[0][0], before[0][0])


def test_optimizer_hyperparameters_and_slope_are_read():
    reading, _ = read_torch(mlp().double(), loss=nn.CrossEntropyLoss(), weights_given=False, source="mlp",
                            optimizer=lambda p: torch.optim.Adam(p, lr=0.003, betas=(0.8, 0.99), eps=1e-6))
    opt = reading.spec.optimizer
    assert (opt.learning_rate, opt.beta1, opt.beta2, opt.epsilon) == (0.003, 0.8, 0.99, 1e-6)
    assert reading.spec.leaky_relu_slope == 0.2 and reading.spec.inputs == 4


def test_without_loss_or_optimizer_the_spec_defaults_stand_and_are_noted():
    torch.manual_seed(1)
    reading, model = read_torch(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double(),
                                weights_given=False, source="bare")
    assert reading.given == frozenset()
    assert (reading.spec.loss, reading.spec.output_activation, reading.spec.optimizer.name) == \
        ("cce", "softmax", "sgd")
    assert any("no loss given" in note for note in reading.notes)
    assert any("no optimizer given" in note for note in reading.notes)
    x, y = data(reading)
    engine_reproduces(reading, model, x, y)          # the spec's loss and optimizer on the module


def test_log_softmax_with_nll_reads_as_cce():
    torch.manual_seed(2)
    module = nn.Sequential(nn.Linear(3, 4), nn.Sigmoid(), nn.Linear(4, 3), nn.LogSoftmax(dim=1)).double()
    reading, model = read_torch(module, loss=nn.NLLLoss(), weights_given=False, source="nll")
    assert (reading.spec.loss, reading.spec.output_activation) == ("cce", "softmax")
    x, y = data(reading)
    engine_reproduces(reading, model, x, y)


def test_double_softmax_is_a_finding_and_the_real_model_keeps_it():
    torch.manual_seed(4)
    module = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 3), nn.Softmax(dim=1)).double()
    reading, model = read_torch(module, loss=nn.CrossEntropyLoss(), weights_given=False, source="double")
    assert [(f.cause, f.where) for f in reading.findings] == [("double_softmax", "layer 2")]
    assert (reading.spec.loss, reading.spec.output_activation) == ("cce", "softmax")
    x, y = data(reading)
    twin = make_backend("scratch", reading.spec, tensors=reading.tensors)
    close(model.outputs(x, training=False), twin.inference(x), "forward")      # A_L agrees …
    loss, _ = model.loss_and_gradients(x, y)
    assert abs(loss - float(twin.trace(x, y)["loss"])) > 1e-3                 # … the loss does not


def refusal(module, **given) -> str:
    with pytest.raises(PortError) as error:
        read_torch(module, weights_given=False, source="mine", **given)
    return str(error.value)


def test_every_unsupported_step_is_named_in_one_error():
    module = nn.Sequential(nn.Conv2d(2, 4, 3, groups=2), nn.ReLU(), nn.Flatten(), nn.GRU(3, 3),
                           nn.Linear(144, 2, bias=False), nn.MaxPool2d(2, padding=1))
    message = refusal(module, inputs=(2, 8, 8))
    for named in ("step 1 `0` (Conv2d): groups=2", "step 4 `3` (GRU): no spec layer for GRU",
                  "step 5 `4` (Linear): bias=False", "step 6 `5` (MaxPool2d): padding=1"):
        assert named in message


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(3, 3), nn.Linear(3, 2)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)) + x).clamp(-5, 5)


def test_a_traced_module_that_is_no_straight_chain_is_refused_by_op():
    message = refusal(Residual())
    assert "_operator.add: no spec layer for this op" in message
    assert "Tensor.clamp" in message


@pytest.mark.parametrize("optimizer, decay, decoupled", [
    (lambda p: torch.optim.SGD(p, lr=0.1, weight_decay=1e-4), 1e-4, False),
    (lambda p: torch.optim.RMSprop(p, weight_decay=0.02), 0.02, False),
    (lambda p: torch.optim.Adam(p, weight_decay=0.03), 0.03, False),
    (lambda p: torch.optim.Adam(p, weight_decay=0.03, decoupled_weight_decay=True), 0.03, True),
    (lambda p: torch.optim.AdamW(p), 0.01, True),                    # AdamW's own default λ
], ids=["sgd", "rmsprop", "adam", "adam-decoupled", "adamw-default"])
def test_weight_decay_is_read_with_its_form(optimizer, decay, decoupled):
    reading, _ = read_torch(nn.Sequential(nn.Linear(3, 2)).double(), loss=nn.CrossEntropyLoss(),
                            optimizer=optimizer, weights_given=False, source="decay")
    assert (reading.spec.optimizer.weight_decay, reading.spec.optimizer.decoupled_decay) == (decay, decoupled)


def test_rmsprop_momentum_is_read():
    """Its first step is the same with or without momentum (the buffer starts at g/d): read it."""
    reading, _ = read_torch(nn.Sequential(nn.Linear(3, 2)).double(), loss=nn.CrossEntropyLoss(),
                            optimizer=lambda p: torch.optim.RMSprop(p, lr=0.01, momentum=0.5),
                            weights_given=False, source="rmsprop")
    assert (reading.spec.optimizer.name, reading.spec.optimizer.momentum) == ("rmsprop", 0.5)


def test_an_optimizer_given_already_built_is_refused_with_the_callable_to_give():
    module = nn.Sequential(nn.Linear(3, 2))
    message = refusal(module, optimizer=torch.optim.SGD(module.parameters(), lr=0.1))
    assert "a SGD already built; give the callable that builds it" in message
    assert "lambda params: torch.optim.SGD(params, lr=…)" in message


def test_no_decay_on_biases_is_refused_as_two_param_groups():
    module = nn.Sequential(nn.Linear(3, 2))
    message = refusal(module, optimizer=lambda p: torch.optim.AdamW([{"params": p[:1]},
                                                                     {"params": p[1:], "weight_decay": 0.0}]))
    assert "2 param groups with different settings" in message


@pytest.mark.parametrize("optimizer, named", [
    (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True), "nesterov=True"),
    (lambda p: torch.optim.Adam(p, amsgrad=True), "amsgrad=True"),
    (lambda p: torch.optim.RMSprop(p, centered=True), "centered=True"),
])
def test_optimizer_options_the_spec_cannot_express_are_refused(optimizer, named):
    assert named in refusal(nn.Sequential(nn.Linear(3, 2)), optimizer=optimizer)


@pytest.mark.parametrize("module, loss, named", [
    (nn.Sequential(nn.Linear(3, 1), nn.Sigmoid()), nn.BCEWithLogitsLoss(), "sigmoid is applied twice"),
    (nn.Sequential(nn.Linear(3, 2)), nn.CrossEntropyLoss(label_smoothing=0.1), "label_smoothing=0.1"),
    (nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2, affine=False), nn.Linear(2, 2)), None, "affine=False"),
    (nn.Sequential(nn.Conv2d(2, 2, 3), nn.Flatten(), nn.Linear(72, 2)), None, "--input-shape"),
    (nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2, dtype=torch.float64)), None, "all float32 or all"),
    (PaddedPool(), None, "padding=1: the spec's pools do not pad"),
    (ChannelMean(), None, "Tensor.mean: no spec layer for this op"),
])
def test_losses_and_layers_the_spec_cannot_express_are_refused(module, loss, named):
    assert named in refusal(module, loss=loss)


def test_an_activation_after_a_layer_without_one_is_named():
    module = nn.Sequential(nn.Conv2d(2, 2, 3), nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(18, 2))
    assert "step 3 `2` (ReLU): a relu after a max_pool2d layer, which has no activation field" in \
        refusal(module, inputs=(2, 8, 8))


def test_param_groups_with_different_settings_are_refused():
    module = nn.Sequential(nn.Linear(3, 2))
    message = refusal(module, optimizer=lambda p: torch.optim.SGD([{"params": p[:1], "lr": 0.1},
                                                                  {"params": p[1:], "lr": 0.2}]))
    assert "2 param groups with different settings" in message


def test_a_float32_module_reads_as_float32():
    reading, model = read_torch(nn.Sequential(nn.Linear(3, 2)), weights_given=False, source="f32")
    assert reading.spec.dtype == "float32" and reading.tensors[0]["W"].dtype == np.float32
    assert model.outputs(np.ones((2, 3)), training=False).dtype == np.float32


def test_load_refuses_a_wrong_shape():
    reading, model = read_torch(nn.Sequential(nn.Linear(3, 2)).double(), weights_given=False, source="m")
    wrong = [{"W": np.zeros((3, 2)), "b": np.zeros(2)}]
    with pytest.raises(PortError, match=r"layer 1 W: expected shape \(2, 3\), got \(3, 2\)"):
        model.load(wrong, None)
    model.load([{"W": np.ones((2, 3)), "b": np.zeros(2)}], None)
    assert np.array_equal(model.tensors()[0]["W"], np.ones((2, 3)))


FACTORY = '''
import torch
from torch import nn

def build():
    return {"model": nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double(),
            "loss": nn.CrossEntropyLoss(), "optimizer": lambda p: torch.optim.SGD(p, lr=0.5)}

def bare():
    return nn.Sequential(nn.Linear(3, 2)).double()

def extra():
    return {"model": bare(), "scheduler": None}
'''


def test_torch_side_imports_the_factory_and_loads_its_state_dict(tmp_path):
    path = tmp_path / "user_model.py"
    path.write_text(FACTORY)
    torch.manual_seed(5)
    saved = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    torch.save(saved.state_dict(), tmp_path / "weights.pt")
    reading, _ = torch_side(str(path), "build", str(tmp_path / "weights.pt"))
    assert reading.given == {"weights", "loss", "optimizer"} and reading.spec.optimizer.learning_rate == 0.5
    assert np.array_equal(reading.tensors[0]["W"], saved[0].weight.detach().numpy())
    assert torch_side(str(path), "bare", None)[0].given == frozenset()
    with pytest.raises(PortError, match="unknown keys"):
        torch_side(str(path), "extra", None)
    torch.save({"0.weight": torch.zeros(2, 3, dtype=torch.float64)}, tmp_path / "partial.pt")
    with pytest.raises(PortError, match=r"missing keys \['0.bias'\]"):
        torch_side(str(path), "bare", str(tmp_path / "partial.pt"))
