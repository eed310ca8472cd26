"""The recurrent layers' tensors between the engine's layout and each framework's, in one place
(NumPy only; issue 22). The engine keeps torch's layout (``scratch.layers.recurrent``): named
tensors ``weight_ih`` (G·H, n), ``weight_hh`` (G·H, H) and either ``bias_ih`` and ``bias_hh``
(G·H,) each — torch's two biases — or one ``bias`` (G·H,), the G gate blocks in torch's order.

* **torch** (``nn.RNN``, ``nn.LSTM``, ``nn.GRU``): the same arrays under ``weight_ih_l0``,
  ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``; gates i, f, g, o and r, z, n. With
  ``bias=True`` there are always two biases, so a one-bias layer is refused: folding it into
  ``bias_ih`` with ``bias_hh = 0`` is the same forward pass, but ``bias_hh`` would train.
* **Keras** (``SimpleRNN``, ``LSTM``, ``GRU``): ``get_weights()`` is [kernel (n, G·H),
  recurrent_kernel (H, G·H), bias], the transposes, with Keras's gate order: the LSTM's i, f, c, o
  is torch's (c is torch's g), the GRU's z, r, h swaps torch's first two blocks. The bias is one
  (G·H,) vector, except ``GRU(reset_after=True)`` (the default), whose (2, 3H) holds the input
  bias and the recurrent one — torch's two. Two biases elsewhere are refused: Keras's LSTM and
  SimpleRNN have one.
"""

from __future__ import annotations

import numpy as np

from scratch.errors import BackendError

GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}
# Keras's block order as indices into torch's: GRU z, r, h = torch's blocks 1, 0, 2
KERAS_BLOCKS = {"simple_rnn": (0,), "lstm": (0, 1, 2, 3), "gru": (1, 0, 2)}
TORCH_NAMES = {"weight_ih": "weight_ih_l0", "weight_hh": "weight_hh_l0", "bias_ih": "bias_ih_l0",
               "bias_hh": "bias_hh_l0"}


def _blocks(array: np.ndarray, kind: str, order: tuple[int, ...]) -> np.ndarray:
    """``array`` with its leading axis's G gate blocks put in ``order`` (G·H, …) → (G·H, …)."""
    gates = GATES[kind]
    if array.shape[0] % gates:
        raise ValueError(f"{kind}: leading axis {array.shape[0]} is not {gates} gate blocks")
    size = array.shape[0] // gates
    return np.concatenate([array[k * size:(k + 1) * size] for k in order], axis=0)


def _inverse(order: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(order))


def to_keras_blocks(array: np.ndarray, kind: str) -> np.ndarray:
    """``array``'s leading G gate blocks from torch's order into Keras's (the GRU's r, z, n → z, r, h)."""
    return _blocks(array, kind, KERAS_BLOCKS[kind])


def from_keras_blocks(array: np.ndarray, kind: str) -> np.ndarray:
    """The inverse of :func:`to_keras_blocks`: Keras's gate order back to torch's."""
    return _blocks(array, kind, _inverse(KERAS_BLOCKS[kind]))


def check_tensors(kind: str, tensors: dict) -> None:
    """The tensors of one ``kind`` layer are the declared ones, each of its shape (n features and
    H units read from ``weight_ih`` and ``weight_hh``); a conversion checks before it converts."""
    n, units = np.shape(tensors.get("weight_ih", ()))[-1], np.shape(tensors.get("weight_hh", ()))[-1]
    width = GATES[kind] * units
    expected = {"weight_ih": (width, n), "weight_hh": (width, units)}
    biases = ("bias_ih", "bias_hh") if "bias_ih" in tensors else ("bias",)
    expected.update({name: (width,) for name in biases})
    if set(tensors) != set(expected):
        raise ValueError(f"{kind}: expected the tensors {sorted(expected)}, got {sorted(tensors)}")
    for name, shape in expected.items():
        if np.shape(tensors[name]) != shape:
            raise ValueError(f"{kind} {name}: expected shape {shape}, got {np.shape(tensors[name])}")


def to_torch(kind: str, tensors: dict) -> dict[str, np.ndarray]:
    """The ``state_dict`` entries of ``nn.RNN/LSTM/GRU(bias=True)``, one layer."""
    check_tensors(kind, tensors)
    if "bias" in tensors:
        raise BackendError(f"torch's {kind} has two biases (b_ih and b_hh, both trained); a layer with one "
                           "bias has no torch form")
    return {TORCH_NAMES[name]: np.array(value) for name, value in tensors.items()}


def from_torch(kind: str, state: dict) -> dict[str, np.ndarray]:
    """The engine's tensors from a one-layer torch ``state_dict`` (arrays)."""
    return {name: np.array(state[stored]) for name, stored in TORCH_NAMES.items()}


def to_keras(kind: str, tensors: dict, reset_after: bool = True) -> list[np.ndarray]:
    """``set_weights`` of Keras's layer: [kernel (n, G·H), recurrent_kernel (H, G·H), bias]."""
    check_tensors(kind, tensors)
    order = KERAS_BLOCKS[kind]
    kernel = _blocks(tensors["weight_ih"], kind, order).T
    recurrent = _blocks(tensors["weight_hh"], kind, order).T
    two = "bias_ih" in tensors
    if kind == "gru" and reset_after:
        if not two:
            raise BackendError("Keras's GRU(reset_after=True) has an input and a recurrent bias, (2, 3H): "
                               "a layer with one bias is its reset_after=False form")
        bias = np.stack([_blocks(tensors["bias_ih"], kind, order), _blocks(tensors["bias_hh"], kind, order)])
    elif two:
        raise BackendError(f"Keras's {kind} has one bias; two (torch's b_ih + b_hh) train differently: "
                           "each gets the full gradient, so the pair moves twice as far")
    else:
        bias = _blocks(tensors["bias"], kind, order)
    return [np.ascontiguousarray(kernel), np.ascontiguousarray(recurrent), bias]


def from_keras(kind: str, weights: list, reset_after: bool = True) -> dict[str, np.ndarray]:
    """The engine's tensors from Keras's [kernel, recurrent_kernel, bias] (arrays): the inverse of
    :func:`to_keras`."""
    back = _inverse(KERAS_BLOCKS[kind])
    kernel, recurrent, bias = (np.asarray(w) for w in weights)
    tensors = {"weight_ih": _blocks(kernel.T, kind, back), "weight_hh": _blocks(recurrent.T, kind, back)}
    if kind == "gru" and reset_after:
        tensors.update(bias_ih=_blocks(bias[0], kind, back), bias_hh=_blocks(bias[1], kind, back))
    else:
        tensors["bias"] = _blocks(bias, kind, back)
    return tensors
