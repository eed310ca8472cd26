"""A user's ``nn.Module`` as the straight chain of steps it runs, in execution order.

An ``nn.Sequential`` (nested ones flattened) is its children in order; a module of ``torch.nn``
itself (``nn.Linear``, ``nn.GRU``, …) is one step; any other module is traced with
``torch.fx.symbolic_trace`` (which inlines ``nn.Sequential`` and the user's own submodules down to
``torch.nn`` leaves) and must be a straight chain: each node takes the previous one's output and
nothing else. Besides ``torch.nn`` modules the chain may hold these functional ops, each read as
an :class:`Op`:

* ``torch.flatten(x, 1)``, ``x.flatten(1)``, ``x.view(x.size(0), -1)``,
  ``x.reshape(x.size(0), -1)`` (``x.shape[0]`` too): a flatten in NCHW order (channels_first);
  after ``x.permute(0, 2, 3, 1)`` (and ``.contiguous()``, a no-op here): channels_last, the order
  of Keras's ``Flatten`` on NHWC maps;
* ``F.relu``, ``torch.relu``, ``torch.sigmoid``, ``torch.tanh``, ``F.leaky_relu``,
  ``F.gelu`` (either ``approximate``), ``F.softmax(·, dim=1)``: activations;
* ``F.max_pool2d``, ``F.avg_pool2d`` with constant arguments: the ``nn.MaxPool2d``/``nn.AvgPool2d``
  they stand for (read as that module); ``x.mean(dim=(2, 3))`` (or ``(-2, -1)``, ``torch.mean``,
  no keepdim): global average pooling to (C,).

Anything else becomes an :class:`Op` of kind ``unsupported`` at its place, so that the reading can
list every one of them in one error.
"""

from __future__ import annotations

import operator
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import fx, nn


class Op(NamedTuple):
    """A functional step: ``kind`` "activation" (``value``: (name, leaky slope or None)),
    "flatten" (``value``: the order) or "unsupported" (``value``: why)."""

    kind: str
    value: Any


class Step(NamedTuple):
    """Step ``position`` (1-based) of the chain, its ``name`` for messages, and what it runs."""

    position: int
    name: str
    target: nn.Module | Op

    def describe(self) -> str:
        return f"step {self.position} {self.name}"


_ACTIVATION_FUNCTIONS = {F.relu: "relu", torch.relu: "relu", torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid",
                         torch.tanh: "tanh", F.tanh: "tanh", F.leaky_relu: "leaky_relu", F.gelu: "gelu",
                         F.softmax: "softmax", torch.softmax: "softmax"}
GELU_FORMS = {"none": "gelu", "tanh": "gelu_tanh"}
"""torch's GELU ``approximate=`` → the spec's activation: exact (erf) or its tanh form."""
_CHANNELS_LAST = (0, 2, 3, 1)


def walk(module: nn.Module) -> list[Step]:
    """The steps of ``module`` in execution order (see the module docstring)."""
    found: list[tuple[str, nn.Module | Op]] = []
    _walk(module, "", found)
    return [Step(position, name, target) for position, (name, target) in enumerate(found, start=1)]


def _label(path: str, module: nn.Module) -> str:
    return f"`{path}` ({type(module).__name__})" if path else type(module).__name__


def _walk(module: nn.Module, path: str, found: list) -> None:
    if isinstance(module, nn.Sequential):
        for name, child in module.named_children():
            _walk(child, f"{path}.{name}" if path else name, found)
    elif type(module).__module__.startswith("torch.nn"):
        found.append((_label(path, module), module))
    else:
        _trace(module, path, found)


def _function_name(node: fx.Node) -> str:
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    target = node.target
    return f"{getattr(target, '__module__', None) or 'torch'}.{getattr(target, '__name__', target)}"


def _argument(node: fx.Node, index: int, keyword: str, default: Any) -> Any:
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(keyword, default)


def _trace(module: nn.Module, path: str, found: list) -> None:
    """Trace a module of the user's own class and append its steps (module docstring)."""
    where = _label(path, module)
    try:
        graph = fx.symbolic_trace(module).graph
    except Exception as error:                      # the user's forward: any error it raises
        found.append((where, Op("unsupported", f"torch.fx cannot trace its forward "
                                               f"({type(error).__name__}: {error})")))
        return
    current, sizes, shapes, permuted = None, set(), set(), None

    def unsupported(node: fx.Node, why: str) -> None:
        found.append((f"{where} {_function_name(node)}" if node.op != "call_module"
                      else f"`{path + '.' if path else ''}{node.target}`", Op("unsupported", why)))

    for node in graph.nodes:
        if permuted is not None and node.op not in ("call_method", "call_function"):
            unsupported(permuted, "permute(0, 2, 3, 1) must be followed by a flatten")
            permuted = None
        if node.op == "placeholder":
            if current is not None:
                unsupported(node, "a second input: the chain takes one tensor")
            current = node
            continue
        if node.op == "output":
            if node.args[0] is not current:
                found.append((f"{where} output", Op("unsupported", "returns something other than the "
                                                                   "last step's tensor")))
            continue
        if node.op == "get_attr":
            unsupported(node, f"reads the tensor `{node.target}` directly (only modules hold parameters)")
            continue
        takes_current = bool(node.args) and node.args[0] is current
        if node.op == "call_module":
            if node.args != (current,) or node.kwargs:
                unsupported(node, "not a straight chain: it takes other inputs than the previous step's "
                                  "output")
            else:
                child_path = f"{path}.{node.target}" if path else str(node.target)
                _walk(module.get_submodule(str(node.target)), child_path, found)
            current = node
            continue
        # x.size(0) and x.shape[0]: only as view/reshape's first size
        if node.op == "call_method" and node.target == "size" and takes_current \
                and _argument(node, 1, "dim", None) == 0:
            sizes.add(node)
            continue
        if node.target is getattr and takes_current and node.args[1:] == ("shape",):
            shapes.add(node)
            continue
        if node.target is operator.getitem and node.args[0] in shapes and node.args[1:] == (0,):
            sizes.add(node)
            continue
        if node.op == "call_method" and node.target == "contiguous" and takes_current:
            current = node
            continue
        if node.op == "call_method" and node.target == "permute" and takes_current:
            dims = node.args[1:] if len(node.args) > 2 else tuple(_argument(node, 1, "dims", ()))
            if tuple(dims) == _CHANNELS_LAST:
                permuted = current = node
                continue
        order = "channels_first" if permuted is None else "channels_last"
        op = _functional(node, current, sizes, order)
        if permuted is not None and (not isinstance(op, Op) or op.kind != "flatten"):
            unsupported(permuted, "permute(0, 2, 3, 1) must be followed by a flatten")
        permuted = None
        if op is None:
            op = Op("unsupported", "no spec layer for this op" if takes_current
                    else "not a straight chain: it does not take the previous step's output")
        found.append((f"{where} {_function_name(node)}", op))
        current = node


_POOLS = {F.max_pool2d: (nn.MaxPool2d, ("kernel_size", "stride", "padding", "dilation", "ceil_mode",
                                         "return_indices")),
          F.avg_pool2d: (nn.AvgPool2d, ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                                        "divisor_override"))}
_SPATIAL = ((2, 3), (-2, -1), [2, 3], [-2, -1])


def _pool_module(node: fx.Node) -> nn.Module | None:
    """The pooling module a functional pool call stands for (its arguments constants), else None."""
    module_class, names = _POOLS[node.target]
    given = dict(zip(names, node.args[1:], strict=False))
    given.update({name: value for name, value in node.kwargs.items() if name in names})
    if len(node.args) > len(names) + 1 or set(node.kwargs) - set(names) \
            or any(isinstance(value, fx.Node) for value in given.values()):
        return None
    return module_class(**given)


def _functional(node: fx.Node, current: fx.Node, sizes: set, order: str) -> Op | nn.Module | None:
    """The :class:`Op` (or the module it stands for) of a supported functional node applied to
    ``current``, else None."""
    if not node.args or node.args[0] is not current:
        return None
    if node.op == "call_function" and node.target in _POOLS:
        return _pool_module(node)
    if (node.op == "call_method" and node.target == "mean") or node.target is torch.mean:
        dims = _argument(node, 1, "dim", None)
        if dims in _SPATIAL and not _argument(node, 2, "keepdim", False) and "dtype" not in node.kwargs:
            return Op("global_avg_pool", None)
        return None
    if node.op == "call_method" and node.target in ("view", "reshape"):
        if len(node.args) == 3 and node.args[1] in sizes and node.args[2] == -1:
            return Op("flatten", order)
        return None
    if (node.op == "call_method" and node.target == "flatten") or node.target is torch.flatten:
        if _argument(node, 1, "start_dim", 0) == 1 and _argument(node, 2, "end_dim", -1) == -1:
            return Op("flatten", order)
        return None
    if node.op != "call_function" or node.target not in _ACTIVATION_FUNCTIONS:
        return None
    name = _ACTIVATION_FUNCTIONS[node.target]
    if name == "leaky_relu":
        return Op("activation", (name, float(_argument(node, 1, "negative_slope", 0.01))))
    if name == "gelu":
        return Op("activation", (GELU_FORMS[_argument(node, 1, "approximate", "none")], None))
    if name == "softmax" and _argument(node, 1, "dim", None) != 1:
        return None
    return Op("activation", (name, None))
