"""The layer stack: hand-derived, vectorized forward and backward passes.

Data are rows: X is (m, n_0) — one sample per row, as in every Python ML library — or (m, C, H, W)
for images (channels first). The seeds write the same network in columns (Z = W·A + b with
A (n, m)); transposing both sides gives the row form used here. Every layer of the spec but
dropout is numbered l = 1..L and runs the object of ``scratch.layers`` for its kind; a dense
layer l with W_l (n_l, n_{l−1}) and b_l (n_l,) is

    forward                                   backward (L = mean batch loss + (λ/2)Σ‖W_l‖²)
    Z_l = A_{l−1} · W_lᵀ + b_l     (m, n_l)   dW_l = dZ_lᵀ · A_{l−1} + λ·W_l   (n_l, n_{l−1})
    H_l = g_l(Z_l)                 (m, n_l)   db_l = Σ_rows dZ_l                (n_l,)
    A_l = H_l ⊙ D_l  (hidden, dropout)        dA_{l−1} = dZ_l · W_l            (m, n_{l−1})
    A_l = H_l        (otherwise)              dZ_{l−1} = g′(Z_{l−1}) ⊙ (dA_{l−1} ⊙ D_{l−1})

and every other kind the same chain with its own Z_l = f_l(A_{l−1}) and its own backward beside
its forward (convolution, pooling, flatten, BatchNorm, LayerNorm: see their modules); a layer
without an activation has g_l = identity. The stack only chains them: each layer object answers
``run(A_{l−1}) → (Z_l, cache)`` and ``differentiate(dZ_l, A_{l−1}, cache) → ((dW_l, db_l) or (),
dA_{l−1})``. At the output, dZ_L comes from the loss (fused A − Y pairings, see
``scratch.losses``) or dZ_L = g′_L(Z_L) ⊙ dA_L. The seeds' 1/m lives in dZ_L here, so dW_l needs
no extra division.

Training processes a batch in blocks of :data:`BLOCK_ROWS` rows (:meth:`Network.gradients`).
Every gradient is a sum over samples once the 1/m sits in dZ_L, so with the batch's rows split
into blocks B_1, B_2, …

    dW_l = Σ_blocks dZ_l[B]ᵀ · A_{l−1}[B],     db_l = Σ_blocks Σ_rows dZ_l[B],
    L    = Σ_blocks (|B|/m) · L[B]               (L[B] the mean loss of the block's rows)

which is the same mathematics in a different summation order (a rounding-level difference, far
below every tolerance). A block's Z_l, A_l and dZ_l stay in the CPU cache between the forward and
the backward pass instead of making a round trip through memory (the timings, measured with
``tools/block_rows_sweep.py``, are in ``docs/speed.md``). BatchNorm couples the rows of a batch
(its statistics are the batch's), so a stack with a batch_norm layer runs the batch as one block.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import numpy as np

from scratch.activations import make_activation
from scratch.batching import map_masks
from scratch.datasets.validate import check_labels
from scratch.errors import DataError, SpecError
from scratch.initializers import initialize_tensors
from scratch.layers import Dense, Dropout
from scratch.layers.normalization import statistics_problem
from scratch.layers.recurrent import token_problem
from scratch.losses import make_loss
from scratch.memory import check_network_fits
from scratch.spec import ModelSpec
from scratch.tensor_specs import gradient_name
from scratch.weights import pair_names as checked_pair_names
from scratch.weights import statistics_names

BLOCK_ROWS = 512
"""Rows per block in :meth:`MLP.gradients`: a block's activations (512 × 64 float64 = 256 KiB
for the seeds' widest hidden layer) and its 512 input rows stay in cache between the forward and
the backward pass (the block-size sweep behind 512 is in ``docs/speed.md``)."""


@dataclass
class ForwardPass:
    """Every intermediate of one forward pass; lists are indexed by layer − 1.

    ``z[l-1]`` = Z_l and ``a[l-1]`` = A_l (after dropout) for l = 1..L; ``h[l-1]`` = g_l(Z_l)
    before dropout (the same array as A_l when nothing is dropped); ``x`` = A_0; ``log_sum`` =
    log Σ_j e^{Z_L,j} per row where the output is a softmax (its denominators, which the
    cross-entropy's value reads), else None.
    """

    x: np.ndarray
    z: list[np.ndarray]
    h: list[np.ndarray]
    a: list[np.ndarray]
    masks: list[np.ndarray] | None = None
    caches: list = field(default_factory=list)     # what each layer's backward needs
    log_sum: np.ndarray | None = None

    @property
    def output(self) -> np.ndarray:
        return self.a[-1]

    def named(self) -> dict[str, np.ndarray]:
        """{"Z1": Z_1, "A1": A_1, …}: the names every backend reports."""
        out = {}
        for layer, (z, a) in enumerate(zip(self.z, self.a, strict=True), start=1):
            out[f"Z{layer}"] = z
            out[f"A{layer}"] = a
        return out


@dataclass
class Gradients:
    """Every gradient of one backward pass; lists are indexed by layer − 1 (``dp`` holds None for
    a layer without parameters).

    ``dp[l-1]`` is the tuple of the gradients of layer l's declared trainable tensors, in their
    declaration order (``scratch.layer_specs``), and ``names[l-1]`` their declared names (``W``,
    ``b``; ``gamma``, ``beta``; ``alpha``; …), which a trace turns into ``d<name><l>``
    (``scratch.tensor_specs.gradient_name``). ``da`` maps layer l to dL/dA_l for each A_l the loss depends on
    through later layers (l < L), and for A_L too when the loss is computed from A_L (MSE); BCE
    and CCE are computed from the logits Z_L, so A_L is not on their path and dA_L does not exist.
    """

    dz: list[np.ndarray]
    dp: list[tuple | None]
    names: list[tuple[str, ...]]
    da: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def dw(self) -> list[np.ndarray | None]:
        """The first tensor's gradient of each layer (dW_l, or dγ_l), None without parameters."""
        return [None if grads is None else grads[0] for grads in self.dp]

    @property
    def db(self) -> list[np.ndarray | None]:
        """The second tensor's gradient of each layer (db_l, or dβ_l), None where there is none."""
        return [None if grads is None or len(grads) < 2 else grads[1] for grads in self.dp]

    @property
    def parameter_gradients(self) -> list[np.ndarray]:
        """[every tensor's gradient of every layer with parameters], in the order of
        :attr:`Network.parameters`."""
        return [g for grads in self.dp if grads is not None for g in grads]

    def named(self) -> dict[str, np.ndarray]:
        """{"dW1": …, "db1": …, "dZ1": …, "dA1": …, "dgamma2": …}: the names every backend reports."""
        out = {}
        for layer in range(1, len(self.dz) + 1):
            if self.dp[layer - 1] is not None:
                out.update((gradient_name(name, layer), grad)
                           for name, grad in zip(self.names[layer - 1], self.dp[layer - 1], strict=True))
            out[f"dZ{layer}"] = self.dz[layer - 1]
            if layer in self.da:
                out[f"dA{layer}"] = self.da[layer]
        return out


class Network:
    """A layer stack built from a :class:`ModelSpec`.

    ``weights`` and ``biases`` hold W_l and b_l of every layer with parameters (the spec's
    ``parameter_layers``, in order), in the canonical layout of the shared weight file: dense
    W_l (n_l, n_{l−1}), conv2d W_l (O, C, k_h, k_w), and BatchNorm's / LayerNorm's γ and β.
    ``statistics`` holds (running mean, running variance) of every batch_norm layer. Without
    explicit parameters, the spec's initializer draws them from ``spec.seed`` (γ = 1, β = 0,
    running mean 0 and variance 1). ``dtype`` overrides ``spec.dtype`` for the arithmetic: the
    parity suite's higher-precision arbiter runs this same engine in float64 or ``np.longdouble``
    (parameters, inputs and targets must then already be in that dtype).
    """

    dense_class = Dense                # a variant of the engine overrides one method of it

    def __init__(self, spec: ModelSpec, weights=None, biases=None, *, statistics=None, dtype=None,
                 tensors=None):
        self.spec = spec
        self.dtype = np.dtype(spec.dtype if dtype is None else dtype)
        if tensors is not None:
            if weights is not None or biases is not None:
                raise SpecError("give tensors, or weights and biases, not both")
        elif weights is None and biases is None:
            check_network_fits(spec, self.dtype)             # a SpecError, not a MemoryError
            tensors = initialize_tensors(spec, self.dtype)
        elif weights is None or biases is None:
            raise SpecError("give both weights and biases, or neither")
        else:
            self._check_parameters(weights, biases)
            tensors = pair_tensors(spec, weights, biases)
        self._check_tensors(tensors)
        # {name: array} of every layer with parameters (spec.parameter_layers), declaration order
        self.tensors = [{name: np.array(layer[name], dtype=self.dtype, copy=True) for name in names}
                        for layer, names in zip(tensors, spec.parameter_names, strict=True)]
        self.statistics = self._statistics(statistics)
        # the tensors L2 penalizes (the dense and conv2d kernels: the same arrays as in self.tensors)
        self.kernels = [layer_tensors[tensor.name]
                        for number, layer_tensors in zip(spec.parameter_layers, self.tensors, strict=True)
                        for tensor in spec.numbered_layers[number - 1].tensors if tensor.l2]
        self.layers = self._build_layers()
        self.dropout = Dropout()
        # g_l of every numbered layer, from the spec's layer list
        self.activations = [make_activation(name, spec.leaky_relu_slope) for name in spec.activations]
        self.loss_fn = make_loss(spec.loss)
        # the declared names (W, b, gamma, alpha, …) of each numbered layer's trainable tensors
        self.trainable_names = [tuple(tensor.name for tensor in layer.tensors if tensor.trainable)
                                for layer in spec.numbered_layers]

    @property
    def weights(self) -> list[np.ndarray]:
        """W_l (or γ_l) of every layer with parameters: the first tensor of a (W, b)-shaped layer."""
        return [layer[names[0]] for layer, names in zip(self.tensors, pair_names(self.spec), strict=True)]

    @property
    def biases(self) -> list[np.ndarray]:
        """b_l (or β_l) of every layer with parameters: the second tensor of a (W, b)-shaped layer."""
        return [layer[names[1]] for layer, names in zip(self.tensors, pair_names(self.spec), strict=True)]

    def _check_parameters(self, weights, biases) -> None:
        shapes = self.spec.parameter_shapes
        if len(weights) != len(shapes) or len(biases) != len(shapes):
            raise SpecError(f"expected {len(shapes)} weights and biases, "
                            f"got {len(weights)} and {len(biases)}")
        for layer, w, b, expected in zip(self.spec.parameter_layers, weights, biases, shapes, strict=True):
            if len(expected) != 2:
                continue                      # pair_tensors refuses a layer that is not (W, b)-shaped
            if np.shape(w) != expected[0] or np.shape(b) != expected[1]:
                raise SpecError(f"layer {layer}: W{layer} {np.shape(w)} and b{layer} {np.shape(b)}; "
                                f"expected {expected[0]} and {expected[1]}")

    def _check_tensors(self, tensors) -> None:
        """Every declared trainable tensor of every layer with parameters, in its shape and dtype."""
        spec = self.spec
        if len(tensors) != len(spec.parameter_layers):
            raise SpecError(f"expected tensors for {len(spec.parameter_layers)} layers with parameters, "
                            f"got {len(tensors)}")
        for layer, given, names, shapes in zip(spec.parameter_layers, tensors, spec.parameter_names,
                                               spec.parameter_shapes, strict=True):
            if not isinstance(given, dict) or sorted(given) != sorted(names):
                found = sorted(given) if isinstance(given, dict) else type(given).__name__
                raise SpecError(f"layer {layer}: expected tensors {', '.join(names)}, got {found}")
            for name, shape in zip(names, shapes, strict=True):
                if np.shape(given[name]) != shape:
                    raise SpecError(f"layer {layer}: {name}{layer} {np.shape(given[name])}; expected {shape}")
            dtypes = [np.asarray(given[name]).dtype for name in names]
            if any(dtype != self.dtype for dtype in dtypes):
                raise SpecError(f"layer {layer}: parameters are {'/'.join(map(str, dtypes))}, "
                                f"spec says {self.dtype}")

    def _statistics(self, statistics) -> list[tuple[np.ndarray, np.ndarray]]:
        """Copies of the running (mean, variance) of every batch_norm layer (0 and 1 if none given),
        each checked as a weight file's are (``scratch.layers.normalization.statistics_problem``)."""
        layers = self.spec.statistics_layers
        if statistics is None:
            return [(np.zeros(self.spec.layer_shapes[layer][0], self.dtype),
                     np.ones(self.spec.layer_shapes[layer][0], self.dtype)) for layer in layers]
        if len(statistics) != len(layers):
            raise SpecError(f"expected running statistics for {len(layers)} batch_norm layer(s), "
                            f"got {len(statistics)}")
        copies, names = [], statistics_names(self.spec)      # the weight file's tensor names
        for layer, pair in zip(layers, statistics, strict=True):
            channels = (self.spec.layer_shapes[layer][0],)
            if len(pair) != 2 or any(np.shape(v) != channels or np.asarray(v).dtype != self.dtype
                                     for v in pair):
                raise SpecError(f"layer {layer}: running mean and variance must be {channels} {self.dtype}")
            mean, variance = (np.array(v, dtype=self.dtype, copy=True) for v in pair)
            mean_name, var_name = names[2 * len(copies):2 * len(copies) + 2]
            problem = statistics_problem(mean_name, mean, var_name, variance)
            if problem:
                raise SpecError(f"statistics: {problem}")
            copies.append((mean, variance))
        return copies

    def _build_layers(self) -> list:
        """The ``scratch.layers`` object of every numbered layer (its spec's ``build``), holding
        references to its named tensors (the arrays the optimizer and BatchNorm update in place)."""
        parameters = iter(self.tensors)
        statistics = iter(self.statistics)
        layers = []
        for layer in self.spec.numbered_layers:
            tensors = {}
            trainable = [tensor.name for tensor in layer.tensors if tensor.trainable]
            if trainable:
                tensors.update(next(parameters))
            if len(trainable) != len(layer.tensors):
                tensors.update(zip([t.name for t in layer.tensors if not t.trainable], next(statistics),
                                   strict=True))
            layers.append(layer.build(tensors, self.dense_class if layer.engine_class is Dense else None))
        return layers

    @property
    def parameters(self) -> list[np.ndarray]:
        """[every trainable tensor of every layer with parameters, in declaration order (W_l, b_l for
        dense)], the arrays the optimizer updates in place."""
        return [tensor for layer in self.tensors for tensor in layer.values()]

    def check_inputs(self, x: np.ndarray) -> None:
        """Raise :class:`DataError` unless ``x`` is (m, *input shape) in the spec's dtype (integer
        token ids, for a stack that starts with an embedding; each id is checked by the layer)."""
        expected = self.spec.input_shape
        if not isinstance(x, np.ndarray) or x.ndim != 1 + len(expected) or x.shape[1:] != expected:
            raise DataError(f"inputs: expected an array of shape (m, {', '.join(map(str, expected))}), "
                            f"got {getattr(x, 'shape', type(x).__name__)}")
        if self.spec.token_inputs:
            problem = token_problem(x, self.spec.layers[0].vocabulary)
            if problem:
                raise DataError(f"inputs: the first layer is an embedding: {problem} (convert explicitly; "
                                "nothing is cast silently)")
        elif x.dtype != self.dtype:
            raise DataError(f"inputs: dtype {x.dtype} but the spec says {self.dtype} "
                            "(convert explicitly; nothing is cast silently)")

    def forward(self, x: np.ndarray, masks: list[np.ndarray] | None = None, *, training: bool = True,
                update_statistics: bool = False) -> ForwardPass:
        """Run X through every layer, keeping every Z_l, g_l(Z_l), A_l and each layer's cache.

        ``training`` picks BatchNorm's batch statistics (True) or its running ones (False);
        ``update_statistics`` moves the running statistics (a training step does)."""
        self.check_inputs(x)
        return self._forward(x, masks, training, update_statistics)

    def _forward(self, x, masks, training, update_statistics) -> ForwardPass:
        """:meth:`forward` of inputs already checked (every caller checks its inputs once)."""
        zs, hs, activations, caches = [], [], [], []
        a = x
        last = self.spec.n_layers - 1
        for layer, operation in enumerate(self.layers):
            z, cache = operation.run(a, training, update_statistics)
            if layer == last:                                  # the output: no dropout
                h, log_sum = self.activations[layer].forward_with_log_sum(z)
                a = h
            else:
                h = self.activations[layer].forward(z)
                a = self.dropout.forward(h, None if masks is None else masks[layer])
            zs.append(z)
            hs.append(h)
            activations.append(a)
            caches.append(cache)
        return ForwardPass(x, zs, hs, activations, masks, caches, log_sum)

    def l2_penalty(self) -> float:
        """(λ/2)·Σ_l ‖W_l‖²_F over the dense and conv2d kernels (0 when λ = 0)."""
        if self.spec.l2 == 0.0:
            return self.dtype.type(0.0)
        return self.dtype.type(0.5 * self.spec.l2) * sum(np.sum(w * w) for w in self.kernels)

    def _l2_of(self, layer: int) -> float:
        """λ for layer ``layer``'s kernel, 0 for a layer L2 does not penalize."""
        return self.spec.l2 if layer in self.spec.kernel_layers else 0.0

    def loss(self, forward: ForwardPass, targets: np.ndarray) -> float:
        """Mean batch loss plus the L2 penalty."""
        data_loss = self.loss_fn.value(forward.z[-1], forward.a[-1], targets, forward.log_sum)
        return data_loss + self.l2_penalty() if self.spec.l2 else data_loss

    def backward(self, forward: ForwardPass, targets: np.ndarray, batch_size: int | None = None,
                 with_penalty: bool = True) -> Gradients:
        """Every gradient of :meth:`loss` with respect to W_l, b_l, Z_l and A_l (see module doc).

        ``batch_size`` is the m of the mean loss, the rows of ``forward`` by default; a block of a
        larger batch passes the batch's m and gets the block's share of the batch gradient.
        ``with_penalty=False`` leaves λ·W_l out of dW_l (so a blocked batch adds it once).
        """
        n_layers = self.spec.n_layers
        da_out, dz = self.loss_fn.gradient(forward.z[-1], forward.a[-1], targets, batch_size)
        da = {}
        if dz is None:                                         # loss on A_L: chain through g_L
            da[n_layers] = da_out
            dz = self.activations[-1].backward(forward.z[-1], forward.h[-1], da_out)
        dzs, dps = [None] * n_layers, [None] * n_layers
        for layer in range(n_layers - 1, -1, -1):              # 0-based index of layer l = index + 1
            a_prev = forward.x if layer == 0 else forward.a[layer - 1]
            dzs[layer] = dz
            l2 = self._l2_of(layer + 1) if with_penalty else 0.0
            grads, da_prev = self.layers[layer].differentiate(dz, a_prev, forward.caches[layer], l2,
                                                              input_gradient=layer > 0)
            if grads:
                dps[layer] = grads
            if layer > 0:
                da[layer] = da_prev
                mask = None if forward.masks is None else forward.masks[layer - 1]
                dh = self.dropout.backward(da_prev, mask)
                dz = self.activations[layer - 1].backward(forward.z[layer - 1], forward.h[layer - 1], dh)
        return Gradients(dzs, dps, self.trainable_names, da)

    def layer_pass(self, layer: int, a_prev: np.ndarray, upstream: np.ndarray,
                   mask: np.ndarray | None = None,
                   route_z: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Layer ``layer`` (1-based) alone, fed A_{l−1} = ``a_prev``, through the very methods
        :meth:`forward` and :meth:`backward` use: Z, A, dZ, the gradient d<name> of each
        trainable tensor (dW incl. λW and db; dgamma, dbeta; dalpha), dA_prev. ``upstream`` is dA_l
        for a hidden layer and the targets Y at the output (whose loss gives dZ_L). Localization
        (``judge.parity.localize``) runs this, so a wrong formula in the engine is found in the
        engine's own code. BatchNorm runs in training mode and leaves its running statistics alone.

        ``route_z`` (a hidden layer's Z_l, shaped as Z) is where g′ is taken in dZ_l = g′(Z_l) ⊙ dA_l
        instead of this pass's own Z: a check re-running the engine under another backend's routing
        passes that backend's Z_l where a kink sits on the other side within rounding
        (``judge.explained``)."""
        index = layer - 1
        is_output = layer == self.spec.n_layers
        operation = self.layers[index]
        activation = self.activations[index]
        z, cache = operation.run(a_prev, True, False)
        h = activation.forward(z)
        a = self.dropout.forward(h, mask)
        if is_output:
            da, dz = self.loss_fn.gradient(z, a, upstream)
            if dz is None:
                dz = activation.backward(z, h, da)
        else:
            routed = z if route_z is None else route_z
            dz = activation.backward(routed, activation.forward(routed) if route_z is not None else h,
                                     self.dropout.backward(upstream, mask))
        grads, da_prev = operation.differentiate(dz, a_prev, cache, self._l2_of(layer))
        out = {"Z": z, "A": a, "dZ": dz, "dA_prev": da_prev}
        out.update(zip(map(gradient_name, self.trainable_names[index]), grads, strict=True))
        return out

    @property
    def block_rows(self) -> int | None:
        """Rows per block in :meth:`gradients`; None (the whole batch) when BatchNorm couples rows."""
        return None if self.spec.statistics_layers else BLOCK_ROWS

    def gradients(self, x: np.ndarray, targets: np.ndarray, masks=None,
                  update_statistics: bool = False) -> tuple[float, list[np.ndarray]]:
        """(:meth:`loss`, [dW_l, db_l, …]) of the batch, in blocks of :attr:`block_rows` rows (see
        the module docstring); a batch of one block is exactly :meth:`forward` then :meth:`backward`."""
        self.check_inputs(x)
        return self._gradients(x, targets, masks, update_statistics)

    def _gradients(self, x, targets, masks, update_statistics):
        """:meth:`gradients` of inputs already checked."""
        m = len(x)
        block_rows = self.block_rows or max(m, 1)
        if 0 < m <= block_rows:                               # one block: the batch itself, unsliced
            data_loss, total = self._block_gradients(x, targets, masks, m, True, update_statistics)
        else:
            data_loss, total = 0.0, None
            for start in range(0, m, block_rows):
                rows = slice(start, start + block_rows)
                block_x = x[rows]
                block_loss, block = self._block_gradients(block_x, targets[rows],
                                                          map_masks(masks, operator.itemgetter(rows)), m,
                                                          start + block_rows >= m, update_statistics)
                data_loss += block_loss * (len(block_x) / m)  # the block's share |B|/m of the mean
                if total is None:
                    total = block
                else:
                    for accumulated, gradient in zip(total, block, strict=True):
                        accumulated += gradient
        loss = data_loss + self.l2_penalty() if self.spec.l2 else data_loss
        return loss, total

    def _block_gradients(self, x, targets, masks, m, with_penalty, update_statistics):
        """(the block's mean data loss, [dW_l, db_l, …] of its rows' share of an m-row batch): its
        forward and backward pass, freed on return (one block alive at a time)."""
        forward = self._forward(x, masks, True, update_statistics)
        block = self.backward(forward, targets, batch_size=m, with_penalty=with_penalty)
        return (self.loss_fn.value(forward.z[-1], forward.a[-1], targets, forward.log_sum),
                block.parameter_gradients)

    def train_step(self, x: np.ndarray, targets: np.ndarray, optimizer, masks=None) -> float:
        """One step: forward (moving BatchNorm's running statistics), loss, backward,
        ``optimizer`` update; the loss before the update. Checks ``x`` and ``targets`` first
        (:meth:`checked_step` is the step of data already checked, as ``fit`` checks it once)."""
        self.check_inputs(x)
        if not isinstance(targets, np.ndarray) or len(targets) != len(x):
            raise DataError(f"targets: expected {len(x)} rows to match the inputs, "
                            f"got {getattr(targets, 'shape', type(targets).__name__)}")
        return self.checked_step(x, targets, optimizer, masks)

    def checked_step(self, x: np.ndarray, targets: np.ndarray, optimizer, masks=None) -> float:
        """:meth:`train_step` of inputs and targets the caller has already checked."""
        loss, gradients = self._gradients(x, targets, masks, True)
        optimizer.step(self.parameters, gradients, consume=True)       # the step's own gradients
        return float(loss)

    def targets(self, y: np.ndarray) -> np.ndarray:
        """Targets Y (m, n_L) from integer labels (m,): one-hot for n_L > 1, a column of 0/1 for
        n_L = 1. A float array already of shape (m, n_L) in the spec's dtype passes through."""
        n_out = self.spec.layer_shapes[-1][0]
        if isinstance(y, np.ndarray) and y.ndim == 2:
            if y.shape[1] != n_out or y.dtype != self.dtype:
                raise DataError(f"targets: expected ({len(y)}, {n_out}) {self.dtype}, "
                                f"got {y.shape} {y.dtype}")
            return y
        if not isinstance(y, np.ndarray) or y.ndim != 1 or y.dtype.kind not in "iu":
            found = f"{y.dtype} {y.shape}" if isinstance(y, np.ndarray) else type(y).__name__
            raise DataError(f"labels: expected a 1-D integer array, got {found}")
        check_labels(y, 2 if n_out == 1 else n_out)
        if n_out == 1:
            return y.astype(self.dtype)[:, None]
        return np.eye(n_out, dtype=self.dtype)[y]

    def inference_outputs(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(Z_L, A_L) in inference mode (no dropout, BatchNorm's running statistics), run in blocks
        of :data:`BLOCK_ROWS` rows (inference couples no rows, so this is exact): only each block's
        output is kept, so memory stays flat in the number of rows — a block's whole forward pass,
        with its im2col patches, is freed before the next block runs."""
        self.check_inputs(x)
        z_out = a_out = None
        for start in range(0, len(x), BLOCK_ROWS):
            block = self._forward(x[start:start + BLOCK_ROWS], None, False, False)
            z, a = block.z[-1], block.a[-1]
            if z_out is None:                                   # (m, n_L), the outputs' dtype
                z_out = np.empty((len(x), *z.shape[1:]), dtype=z.dtype)
                a_out = np.empty((len(x), *a.shape[1:]), dtype=a.dtype)
            z_out[start:start + len(z)], a_out[start:start + len(a)] = z, a
            del block, z, a
        if z_out is None:                                       # no rows: run the empty batch once
            forward = self._forward(x, None, False, False)
            return forward.z[-1], forward.a[-1]
        return z_out, a_out

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class labels (m,) of the inference output: :func:`class_labels`."""
        return class_labels(self.inference_outputs(x)[1])

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """(mean loss incl. L2, accuracy) on (x, y): no dropout, BatchNorm in inference mode."""
        z_out, a_out = self.inference_outputs(x)
        targets = self.targets(y)
        data_loss = self.loss_fn.value(z_out, a_out, targets)
        loss = float(data_loss + self.l2_penalty() if self.spec.l2 else data_loss)
        wanted = y if y.ndim == 1 else class_labels(targets)
        return loss, float(np.mean(class_labels(a_out) == wanted))

    def fit(self, x, y, x_test=None, y_test=None, on_step=None, eval_every=1):
        """Train for ``spec.epochs`` epochs; see :func:`scratch.training.fit`."""
        from scratch.training import fit
        return fit(self, x, y, x_test=x_test, y_test=y_test, on_step=on_step, eval_every=eval_every)


def pair_tensors(spec: ModelSpec, weights, biases) -> list[dict[str, np.ndarray]]:
    """The named tensors of the (W_l, b_l) lists (γ, β for a normalization): every layer with
    parameters must declare exactly two trainable tensors."""
    return [{first: w, second: b}
            for (first, second), w, b in zip(pair_names(spec), weights, biases, strict=True)]


def pair_names(spec: ModelSpec) -> tuple[tuple[str, str], ...]:
    return checked_pair_names(spec, SpecError, "pass and read them by name (tensors=, Network.tensors)")


MLP = Network


def class_labels(output: np.ndarray) -> np.ndarray:
    """Class labels (m,) of an output A_L (m, n_L) — or of one-hot / 0-1 targets of that shape:
    the one labelling rule of the engine, its reports and every backend's accuracy.

    * n_L > 1 (softmax, or any several-unit output): the argmax over the units, ŷ = argmax_k A_L[:, k]
      (ties go to the first unit, as ``np.argmax``);
    * n_L = 1 (a sigmoid unit for 0/1 targets, or identity/tanh under MSE): the threshold at 0.5,
      the midpoint of the 0/1 targets, ŷ = 1 if A_L > 0.5 else 0 (exactly 0.5 is class 0).
    """
    if output.shape[1] > 1:
        return output.argmax(axis=1)
    return (output[:, 0] > 0.5).astype(np.int64)
"""The name the seeds and the MLP-only versions of this engine used; the same class."""


def save_model(model: Network, path) -> None:
    """Write ``model``'s spec, parameters and running statistics to the shared weight file."""
    from scratch.weights import save_tensors
    save_tensors(path, model.spec, model.tensors, model.statistics)


def load_model(path) -> Network:
    """A :class:`Network` with the spec, parameters and statistics stored in the weight file."""
    from scratch.weights import load_weights
    loaded = load_weights(path)
    return Network(loaded.spec, tensors=loaded.tensors, statistics=loaded.statistics)
