"""The shared weight file: safetensors, canonical names and layout, the spec in the metadata.

**Format 2** (``backprop-parity/2``, what every save writes). Each tensor is named by its
layer's position in the spec's layer list and its declared tensor's stored name
(``TensorSpec.stored``, torch's attribute), ``layers.<i>.<stored>``, and stored in the canonical
layout of its layer type:

==========  ===============  =============================  =========================================
layer type  layout           tensor: shape                  the same as
==========  ===============  =============================  =========================================
dense       ``out_in``       ``weight``: (n_l, n_{l−1})     ``torch.nn.Linear.weight`` (Keras: kernelᵀ)
                             ``bias``: (n_l,)
conv2d      ``OIHW``         ``weight``: (O, C, k_h, k_w)   ``torch.nn.Conv2d.weight`` (Keras's HWIO
                             ``bias``: (O,)                 kernel is its transpose (2, 3, 1, 0))
batch_norm  ``per_channel``  ``weight`` γ, ``bias`` β,      ``torch.nn.BatchNorm2d`` (Keras: gamma,
                             ``running_mean``,              beta, moving_mean, moving_variance)
                             ``running_var``: (C,)
layer_norm  ``per_feature``  ``weight`` γ, ``bias`` β: (n,) ``torch.nn.LayerNorm`` (Keras: gamma, beta)
==========  ===============  =============================  =========================================

and a prelu layer's ``weight`` α in the layout ``per_sample_broadcast``: (1,), (C, 1, 1) or one
sample's shape — one shared slope, one per channel, one per element (``torch.nn.PReLU.weight``
reshaped; Keras's ``alpha``, on maps transposed to (H, W, C)), all
in the spec's dtype; ``<i>`` is the layer's index in the spec's layer list (dropout, pooling
and flatten layers have no tensors). The running variance is stored as the spec's
``running_variance`` convention computed it (unbiased or biased). The metadata holds
``format``, ``spec`` (the :class:`ModelSpec` as JSON) and ``layout`` (JSON: each parameterized
layer type of the spec → its layout name), so a reader can tell the layout it was written in
from one it does not know.

**Format 1** (``backprop-parity/1``, still read): ``W1, b1, …, WL, bL`` in the same layout,
no ``layout`` entry (format 1 had only this one).

Every backend reads and writes this file through :func:`load_weights` / :func:`save_weights`
and converts to its own layout in exactly one place. Files are written to a temporary name in
the same folder and renamed, so a failed save never leaves a partial file behind. Loading
checks, one clear :class:`WeightFileError` per problem: readable safetensors, a known format,
the layout entry (format 2), a valid spec, no missing or extra tensors, every shape and dtype as
the spec says, every value finite (the first bad element named, with its index and value), and
BatchNorm's running statistics as :func:`scratch.layers.normalization.statistics_problem` requires
(variance ≥ 0, |mean| ≤ √max of the dtype). Saving checks the same, and a save onto a folder or a
write that fails is one :class:`WeightFileError` naming the path given (never the temporary file).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scratch.errors import SpecError, WeightFileError
from scratch.layer_specs import LAYER_SPECS
from scratch.layers.normalization import element_problem, statistics_problem
from scratch.spec import ModelSpec

FORMAT = "backprop-parity/2"
FORMAT_V1 = "backprop-parity/1"
FORMATS = (FORMAT, FORMAT_V1)
LAYOUTS = {kind: spec.tensors[0].layout for kind, spec in LAYER_SPECS.items() if spec.tensors}
"""The canonical layout of each parameterized layer type: its first declared tensor's
(``scratch.layer_specs``; see the module docstring)."""


def layout(spec: ModelSpec) -> dict[str, str]:
    """The ``layout`` metadata of ``spec``'s file: each parameterized layer type it uses."""
    return {kind: LAYOUTS[kind] for kind in dict.fromkeys(layer.kind for layer in spec.layers)
            if kind in LAYOUTS}


def _positions(spec: ModelSpec) -> dict[int, int]:
    """Numbered layer l → its index in ``spec.layers`` (the ``<i>`` of the tensor names)."""
    numbered = [index for index, layer in enumerate(spec.layers) if layer.kind != "dropout"]
    return {number: numbered[number - 1] for number in range(1, spec.n_layers + 1)}


def tensor_names(spec: ModelSpec, file_format: str = FORMAT) -> list[str]:
    """The parameter tensors of ``spec`` in the order W, b of every layer with parameters:
    ``layers.<i>.weight``, ``layers.<i>.bias`` (format 2) or ``W1``, ``b1``, … (format 1, MLPs)."""
    if file_format == FORMAT_V1:
        return [f"{kind}{layer}" for layer in range(1, spec.n_layers + 1) for kind in ("W", "b")]
    positions = _positions(spec)
    return [f"layers.{positions[layer]}.{tensor.stored}" for layer in spec.parameter_layers
            for tensor in spec.numbered_layers[layer - 1].tensors if tensor.trainable]


def statistics_names(spec: ModelSpec) -> list[str]:
    """``layers.<i>.running_mean``, ``layers.<i>.running_var`` of every batch_norm layer."""
    positions = _positions(spec)
    return [f"layers.{positions[layer]}.{tensor.stored}" for layer in spec.statistics_layers
            for tensor in spec.numbered_layers[layer - 1].tensors if not tensor.trainable]


def expected_shapes(spec: ModelSpec, file_format: str = FORMAT) -> dict[str, tuple[int, ...]]:
    shapes = [shape for pair in spec.parameter_shapes for shape in pair]
    expected = dict(zip(tensor_names(spec, file_format), shapes, strict=True))
    if file_format == FORMAT:
        channels = [(spec.layer_shapes[layer][0],) for layer in spec.statistics_layers for _ in range(2)]
        expected.update(zip(statistics_names(spec), channels, strict=True))
    return expected


@dataclass(frozen=True)
class WeightFile:
    """A loaded weight file: the spec, {name: tensor} of every layer with parameters (its declared
    trainable tensors, canonical layout), and (running mean, running variance) of every batch_norm
    layer. ``weights`` and ``biases`` read the (W_l, b_l) pairs of a stack whose every layer with
    parameters holds two tensors."""

    spec: ModelSpec
    tensors: list[dict[str, np.ndarray]]
    statistics: list[tuple[np.ndarray, np.ndarray]] = dataclasses.field(default_factory=list)

    @property
    def weights(self) -> list[np.ndarray]:
        return [layer[names[0]] for layer, names in zip(self.tensors, _pairs(self.spec), strict=True)]

    @property
    def biases(self) -> list[np.ndarray]:
        return [layer[names[1]] for layer, names in zip(self.tensors, _pairs(self.spec), strict=True)]


def pair_names(spec: ModelSpec, error=SpecError, fix: str = "read WeightFile.tensors by name"):
    """Each parameter layer's two tensor names, for the (W, b)-list adapters over named tensors;
    ``error`` (naming ``fix``) for a layer that holds anything but two tensors (PReLU's α)."""
    odd = [(layer, names) for layer, names in zip(spec.parameter_layers, spec.parameter_names, strict=True)
           if len(names) != 2]
    if odd:
        layer, names = odd[0]
        raise error(f"layer {layer} holds tensors {', '.join(names)}, not a (W, b) pair; {fix}")
    return spec.parameter_names


def _pairs(spec: ModelSpec) -> tuple[tuple[str, ...], ...]:
    return pair_names(spec, WeightFileError)


def save_weights(path, spec: ModelSpec, weights, biases, statistics=None) -> Path:
    """:func:`save_tensors` of (W_l, b_l) lists (γ, β for a normalization layer)."""
    n_parameter_layers = len(spec.parameter_layers)
    if not len(weights) == len(biases) == n_parameter_layers:
        raise WeightFileError(f"{path}: {len(weights)} weights and {len(biases)} biases for a spec "
                              f"with {n_parameter_layers} layers with parameters")
    try:
        names = _pairs(spec)
    except WeightFileError as error:
        raise WeightFileError(f"{path}: {error}") from None
    tensors = [{first: w, second: b} for (first, second), w, b in zip(names, weights, biases, strict=True)]
    return save_tensors(path, spec, tensors, statistics)


def save_tensors(path, spec: ModelSpec, tensors, statistics=None) -> Path:
    """Write the spec, the named tensors of every layer with parameters and the running statistics
    (BatchNorm's; required when the spec has batch_norm layers) to ``path`` (atomically) and return
    the path."""
    from safetensors.numpy import save

    path = Path(path)
    if path.is_dir():
        raise WeightFileError(f"{path}: is a folder; expected a file path, e.g. {path / 'model.safetensors'}")
    if len(tensors) != len(spec.parameter_layers):
        raise WeightFileError(f"{path}: tensors for {len(tensors)} layer(s), but the spec has "
                              f"{len(spec.parameter_layers)} layers with parameters")
    statistics = list(statistics or [])
    if len(statistics) != len(spec.statistics_layers):
        raise WeightFileError(f"{path}: running statistics for {len(statistics)} layer(s), but the spec "
                              f"has {len(spec.statistics_layers)} batch_norm layer(s)")
    missing = [f"{name}{layer}" for layer, given, names in zip(spec.parameter_layers, tensors,
                                                               spec.parameter_names, strict=True)
               for name in names if name not in given]
    if missing:
        raise WeightFileError(f"{path}: missing tensor(s) {', '.join(missing)}")
    ordered = [given[name] for given, names in zip(tensors, spec.parameter_names, strict=True)
               for name in names]
    named = dict(zip(tensor_names(spec), ordered, strict=True))
    named.update(zip(statistics_names(spec), [v for pair in statistics for v in pair], strict=True))
    _check_tensors(str(path), spec, named)
    payload = save({name: np.ascontiguousarray(t) for name, t in named.items()},
                   metadata={"format": FORMAT, "spec": spec.to_json(),
                             "layout": json.dumps(layout(spec), sort_keys=True)})
    try:
        write_atomically(path, payload)
    except OSError as error:                      # never the temporary file's name: the path given
        raise WeightFileError(f"{path}: cannot write ({error.strerror or error})") from None
    return path


def write_atomically(path: Path, payload: bytes) -> Path:
    """Write ``payload`` to a temporary name beside ``path`` and rename it into place, so a
    failed write never leaves a partial file (mode follows the umask, like ``open``). The rename
    would replace whatever ``path`` is, so anything but a regular file (a FIFO, a device, a
    socket, a symbolic link: :func:`not_replaceable`) is refused with an ``OSError`` first."""
    problem = not_replaceable(path)
    if problem:
        raise OSError(errno.EEXIST, problem)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp_name, 0o666 & ~umask)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return path


def not_replaceable(path) -> str | None:
    """Why an output file must not be written over ``path`` (renaming a file onto a device node,
    a FIFO or a symbolic link replaces the node or the link itself; as root that replaced a system
    device), or None when ``path`` is missing or a regular file."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:                               # missing, or unreadable: the write itself will say
        return None
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return (f"is a symbolic link (to {os.readlink(path)}), not a regular file; refusing to replace "
                "the link: give the path it points to, or remove the link")
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISSOCK, "a socket"))
    kind = next((name for test, name in kinds if test(mode)), "not a regular file")
    return f"exists and is {kind}, not a regular file; refusing to replace it (give a file path)"


def load_weights(path) -> WeightFile:
    """Read and check a weight file; see the module docstring for what is checked."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    path = Path(path)
    where = str(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise WeightFileError(f"{where}: cannot read ({error.strerror})") from None
    try:
        header = _read_header(raw)
    except (ValueError, OverflowError) as error:
        raise WeightFileError(f"{where}: not a readable safetensors file ({error})") from None
    for name, entry in header.items():
        if name != "__metadata__" and entry.get("dtype") not in _NUMPY_DTYPES:
            raise WeightFileError(f"{where}: tensor {name} is {entry.get('dtype')}, expected F32 or F64")
    metadata = header.get("__metadata__") or {}
    try:
        tensors = load(raw)
    except (SafetensorError, ValueError, OverflowError) as error:
        raise WeightFileError(f"{where}: not a readable safetensors file ({error})") from None
    file_format = metadata.get("format")
    if file_format not in FORMATS:
        raise WeightFileError(f"{where}: metadata 'format' is {file_format!r}, "
                              f"expected {FORMAT!r} or {FORMAT_V1!r}")
    if "spec" not in metadata:
        raise WeightFileError(f"{where}: metadata has no 'spec'")
    try:
        spec = ModelSpec.from_json(metadata["spec"], source=f"{where} metadata 'spec'")
    except SpecError as error:
        raise WeightFileError(f"{where}: bad spec in metadata: {error}") from None
    if file_format == FORMAT:
        _check_layout(where, spec, metadata)
    elif not spec.is_mlp:
        raise WeightFileError(f"{where}: format {FORMAT_V1!r} holds dense layers only, but its spec has "
                              f"{_described(spec)}")
    _check_tensors(where, spec, tensors, file_format)
    names = tensor_names(spec, file_format)
    stats = statistics_names(spec) if file_format == FORMAT else []
    statistics = [(tensors[mean], tensors[var]) for mean, var in zip(stats[0::2], stats[1::2], strict=True)]
    stored = iter(tensors[name] for name in names)
    return WeightFile(spec, [{name: next(stored) for name in layer} for layer in spec.parameter_names],
                      statistics)


_NUMPY_DTYPES = {"F32", "F64"}


def _read_header(raw: bytes) -> dict:
    """The safetensors JSON header: 8 bytes of little-endian length, then that many bytes."""
    if len(raw) < 8:
        raise ValueError("file shorter than the 8-byte header length")
    header_length = int.from_bytes(raw[:8], "little")
    if header_length > len(raw) - 8:
        raise ValueError(f"header length {header_length} runs past the end of the file")
    header = json.loads(raw[8:8 + header_length])
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    return header


def _check_layout(where: str, spec: ModelSpec, metadata: dict) -> None:
    """Format 2 must say the layout of each of its layer types, and it must be the one this
    version reads (a layout this version does not know is refused, never reinterpreted)."""
    if "layout" not in metadata:
        raise WeightFileError(f"{where}: metadata has no 'layout' (format 2 names the tensor layout "
                              f"of each layer type, e.g. {json.dumps(layout(spec))})")
    try:
        stored = json.loads(metadata["layout"])
    except json.JSONDecodeError as error:
        raise WeightFileError(f"{where}: metadata 'layout' is malformed JSON ({error})") from None
    if not isinstance(stored, dict):
        raise WeightFileError(f"{where}: metadata 'layout' must be a JSON object, got {stored!r}")
    expected = layout(spec)
    for kind, name in stored.items():
        if kind not in expected:
            raise WeightFileError(f"{where}: metadata 'layout' names layer type {kind!r}, which the "
                                  f"spec does not use (its types: {', '.join(expected) or 'none'})")
        if name != expected[kind]:
            raise WeightFileError(f"{where}: unknown layout {name!r} for {kind} layers; this version "
                                  f"reads {expected[kind]!r} (see scratch/weights.py)")
    missing = [kind for kind in expected if kind not in stored]
    if missing:
        raise WeightFileError(f"{where}: metadata 'layout' gives no layout for {', '.join(missing)} layers")


def _described(spec: ModelSpec) -> str:
    if spec.is_mlp:
        return f"layer sizes {spec.layer_sizes}"
    return f"layers {', '.join(layer.kind for layer in spec.layers)}"


def _check_tensors(where: str, spec: ModelSpec, tensors: dict[str, np.ndarray],
                   file_format: str = FORMAT) -> None:
    shapes = expected_shapes(spec, file_format)
    missing = [n for n in shapes if n not in tensors]
    extra = sorted(n for n in tensors if n not in shapes)
    if missing:
        raise WeightFileError(f"{where}: missing tensor(s) {', '.join(missing)} for {_described(spec)}")
    if extra:
        raise WeightFileError(f"{where}: unexpected tensor(s) {', '.join(extra)} for {_described(spec)}")
    for name, shape in shapes.items():
        tensor = tensors[name]
        if tuple(tensor.shape) != shape:
            raise WeightFileError(f"{where}: tensor {name} has shape {tuple(tensor.shape)}, "
                                  f"spec says {shape}")
        if tensor.dtype != np.dtype(spec.dtype):
            raise WeightFileError(f"{where}: tensor {name} is {tensor.dtype}, spec says {spec.dtype}")
        bad = ~np.isfinite(tensor)
        if bad.any():
            problem = element_problem(name, tensor, bad, "non-finite", "expected only finite values")
            raise WeightFileError(f"{where}: {problem}")
    if file_format == FORMAT:
        stats = statistics_names(spec)
        for mean, var in zip(stats[0::2], stats[1::2], strict=True):
            problem = statistics_problem(mean, tensors[mean], var, tensors[var])
            if problem:
                raise WeightFileError(f"{where}: {problem}")
