"""The known causes of "same weights, different results", each declared once: its name, a title,
why the frameworks differ there, and how to move reading A one step toward reading B by it.

A cause's ``variants(a, b)`` returns the readings A would become if A differed from B by that cause
alone at one place — ``[(where, reading), …]`` — or nothing where the cause cannot apply (A and B do
not differ in that field, B brought no weights of its own, a kernel is not square). The doctor
(:mod:`ports.doctor`) measures each variant against B; a variant that removes the disagreement
names its cause. Both readings are in one form first (:mod:`ports.align`).

Three families:

* **conventions** — a field of the spec where the frameworks' defaults or meanings differ
  (BatchNorm's momentum ρ = 1 − m, ε, the running-variance estimator, LayerNorm's ε, the padding
  split, LeakyReLU's slope, GELU's exact or tanh form, L2 as λ‖W‖² or (λ/2)‖W‖², L2 in the loss or
  weight decay, coupled or decoupled decay and its λ, the optimizer's ε placement and defaults);
* **weight mapping** — B's own tensors are A's under a known wrong transform (a dense kernel not
  transposed, a conv kernel with its spatial axes swapped or flipped, in/out channels swapped, the
  kernel after a flatten not re-ordered, BatchNorm's running statistics not copied);
* **found elsewhere** — B's own code running in training mode when asked for inference, or its
  BCELoss clipping saturated outputs (found on B's real model by :mod:`ports.compare`), a double
  softmax or sigmoid (seen in the model itself: a :class:`ports.reading.Finding`), initializer
  defaults; declared here for their names and text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ports.align import flatten_permutation
from ports.reading import OWN_CONVENTION, Reading, decay_expressible

Variants = list[tuple[str, Reading]]


@dataclass(frozen=True)
class Cause:
    name: str
    title: str
    why: str
    variants: Callable[[Reading, Reading], Variants]
    found: str = "readings"     # or "real model" (ports.compare), "model itself" (a reader's Finding)
    fixed: Callable[[Reading, Reading], bool] | None = None
    """Whether a side's framework fixes this difference, so that no port can remove it (torch stores
    only the unbiased running variance); None: a port can always match it."""

    def fixed_between(self, a: Reading, b: Reading) -> bool:
        return self.fixed is not None and self.fixed(a, b)


def rounds_alike(ours, theirs) -> bool:
    """Whether two different hyperparameters are one number held once in float32 and once in
    float64 (Keras holds its hyperparameters as float32 variables: lr 0.01 reads 0.009999999776…)."""
    return (ours != theirs and isinstance(ours, float) and isinstance(theirs, float)
            and np.float32(ours) == np.float32(theirs))


def _differ(ours, theirs) -> bool:
    """A real difference: not one number rounded to float32 on one side (see :func:`rounds_alike`)."""
    return ours != theirs and not rounds_alike(ours, theirs)


def _layer_field(kind: str, *fields: str) -> Callable[[Reading, Reading], Variants]:
    """Variants setting ``fields`` of each ``kind`` layer of A to B's values, one layer at a time."""
    def variants(a: Reading, b: Reading) -> Variants:
        found, number = [], 0
        for index, (ours, theirs) in enumerate(zip(a.spec.layers, b.spec.layers, strict=True)):
            number += ours.kind != "dropout"
            if ours.kind != kind or not any(_differ(getattr(ours, f), getattr(theirs, f)) for f in fields):
                continue
            layers = list(a.spec.layers)
            layers[index] = replace(ours, **{f: getattr(theirs, f) for f in fields})
            found.append((f"layer {number}: " + ", ".join(
                f"{f} {getattr(ours, f)!r} in A, {getattr(theirs, f)!r} in B" for f in fields),
                replace(a, spec=a.spec.replace(layers=tuple(layers)))))
        return found
    return variants


def _model_field(name: str) -> Callable[[Reading, Reading], Variants]:
    def variants(a: Reading, b: Reading) -> Variants:
        ours, theirs = getattr(a.spec, name), getattr(b.spec, name)
        if not _differ(ours, theirs):
            return []
        return [(f"{name} {ours!r} in A, {theirs!r} in B", replace(a, spec=a.spec.replace(**{name: theirs})))]
    return variants


def _l2(factor_two: bool) -> Callable[[Reading, Reading], Variants]:
    def variants(a: Reading, b: Reading) -> Variants:
        ours, theirs = a.spec.l2, b.spec.l2
        doubled = ours > 0 and theirs > 0 and (np.isclose(theirs, 2 * ours) or np.isclose(ours, 2 * theirs))
        if not _differ(ours, theirs) or doubled != factor_two:
            return []
        return [(f"l2 λ {ours!r} in A, {theirs!r} in B", replace(a, spec=a.spec.replace(l2=theirs)))]
    return variants


def _optimizer_field(*fields: str) -> Callable[[Reading, Reading], Variants]:
    def variants(a: Reading, b: Reading) -> Variants:
        ours, theirs = a.spec.optimizer, b.spec.optimizer
        if ours.name != theirs.name and "name" not in fields:
            return []
        if not any(_differ(getattr(ours, f), getattr(theirs, f)) for f in fields):
            return []
        changed = {f: getattr(theirs, f) for f in fields}
        if "name" in fields:        # sgd ↔ momentum: the momentum value comes with it
            changed["momentum"] = theirs.momentum
        where = ", ".join(f"{f} {getattr(ours, f)!r} in A, {getattr(theirs, f)!r} in B" for f in changed
                          if getattr(ours, f) != getattr(theirs, f))
        return [(f"optimizer {where}", replace(a, spec=a.spec.replace(optimizer=replace(ours, **changed))))]
    return variants


def _decay_form(a: Reading, b: Reading) -> Variants:
    """A's weight decay in B's form (coupled ↔ decoupled), where both decay."""
    ours, theirs = a.spec.optimizer, b.spec.optimizer
    if not (ours.weight_decay and theirs.weight_decay) or ours.decoupled_decay == theirs.decoupled_decay:
        return []
    form = {True: "decoupled", False: "coupled"}
    moved = replace(ours, decoupled_decay=theirs.decoupled_decay)
    where = f"weight decay {form[ours.decoupled_decay]} in A, {form[theirs.decoupled_decay]} in B"
    return [(f"optimizer: {where}", replace(a, spec=a.spec.replace(optimizer=moved)))]


def _decay_form_fixed(a: Reading, b: Reading) -> bool:
    """Neither side's framework has the other's form (Keras decays decoupled only; torch's SGD and
    RMSprop coupled only): no port can remove the difference. Where one side could take the other's
    form (torch's AdamW for Keras's Adam with weight_decay), it is a port mistake."""
    return all(side.framework in OWN_CONVENTION
               and not decay_expressible(side.framework, other.spec.optimizer)
               for side, other in ((a, b), (b, a)))


def _weight_decay(a: Reading, b: Reading) -> Variants:
    """A's weight decay λ set to B's (its form with it where A decays nothing), neither side's L2
    in the loss involved."""
    ours, theirs = a.spec.optimizer, b.spec.optimizer
    if not _differ(ours.weight_decay, theirs.weight_decay) or a.spec.l2 != b.spec.l2:
        return []
    decoupled = theirs.decoupled_decay if theirs.weight_decay else False
    return [(f"optimizer weight_decay {ours.weight_decay!r} in A, {theirs.weight_decay!r} in B",
             replace(a, spec=a.spec.replace(optimizer=replace(ours, weight_decay=theirs.weight_decay,
                                                              decoupled_decay=decoupled))))]


def _l2_as_weight_decay(a: Reading, b: Reading) -> Variants:
    """One side penalizes its kernels in the loss (l2), the other decays every tensor (weight_decay):
    A takes B's whole regularization."""
    ours, theirs = a.spec, b.spec
    in_loss = (ours.l2 > 0 and not ours.optimizer.weight_decay and theirs.optimizer.weight_decay > 0
               and not theirs.l2)
    decayed = (ours.optimizer.weight_decay > 0 and not ours.l2 and theirs.l2 > 0
               and not theirs.optimizer.weight_decay)
    if not (in_loss or decayed):
        return []
    optimizer = replace(ours.optimizer, weight_decay=theirs.optimizer.weight_decay,
                        decoupled_decay=theirs.optimizer.decoupled_decay)
    where = (f"l2 {ours.l2!r} in A's loss, weight_decay {theirs.optimizer.weight_decay!r} in B's optimizer"
             if in_loss else
             f"weight_decay {ours.optimizer.weight_decay!r} in A's optimizer, l2 {theirs.l2!r} in B's loss")
    return [(where, replace(a, spec=ours.replace(l2=theirs.l2, optimizer=optimizer)))]


GELU_FORMS = {"gelu", "gelu_tanh"}


def _gelu_form(a: Reading, b: Reading) -> Variants:
    """Every layer where one side's GELU is exact and the other's its tanh form, A's set to B's at
    once (a port calls one GELU function throughout)."""
    layers, where, number = list(a.spec.layers), [], 0
    for index, (ours, theirs) in enumerate(zip(a.spec.layers, b.spec.layers, strict=True)):
        number += ours.kind != "dropout"
        held = getattr(ours, "activation", None), getattr(theirs, "activation", None)
        if set(held) == GELU_FORMS:
            layers[index] = replace(ours, activation=held[1])
            where.append(f"layer {number}: {held[0]} in A, {held[1]} in B")
    return [("; ".join(where), replace(a, spec=a.spec.replace(layers=tuple(layers))))] if where else []


def _momentum_left_out(a: Reading, b: Reading) -> Variants:
    names = {a.spec.optimizer.name, b.spec.optimizer.name}
    return _optimizer_field("name")(a, b) if names == {"sgd", "momentum"} else []


def _float32_hyperparameters(a: Reading, b: Reading) -> Variants:
    """Every hyperparameter of A that B holds as the same number rounded to float32 (or the
    reverse), set to B's at once."""
    spec, changed = a.spec, []
    optimizer = {f.name: getattr(b.spec.optimizer, f.name) for f in dataclasses.fields(a.spec.optimizer)
                 if rounds_alike(getattr(a.spec.optimizer, f.name), getattr(b.spec.optimizer, f.name))}
    if optimizer:
        spec = spec.replace(optimizer=replace(spec.optimizer, **optimizer))
        changed += [f"optimizer {name}" for name in optimizer]
    model = {name: getattr(b.spec, name) for name in ("l2", "leaky_relu_slope")
             if rounds_alike(getattr(a.spec, name), getattr(b.spec, name))}
    if model:
        spec = spec.replace(**model)
        changed += list(model)
    layers = list(spec.layers)
    for index, (ours, theirs) in enumerate(zip(a.spec.layers, b.spec.layers, strict=True)):
        fields = {f.name: getattr(theirs, f.name) for f in dataclasses.fields(ours)
                  if rounds_alike(getattr(ours, f.name), getattr(theirs, f.name))}
        if fields:
            layers[index] = replace(ours, **fields)
            changed += [f"layer {index + 1} {name}" for name in fields]
    if not changed:
        return []
    return [(", ".join(changed) + " differ by float32 rounding only",
             replace(a, spec=spec.replace(layers=tuple(layers))))]


FIXED_VARIANCE = {"torch": "unbiased", "keras": "biased"}


FIXED_CONVENTION = {"torch": "torch", "keras": "keras"}
"""Frameworks whose optimizers follow one formula only (optax builds torch's and Keras's from its
pieces, as the JAX twin does; a weight file or NumPy side holds any convention)."""


def _own_conventions(a: Reading, b: Reading) -> bool:
    """Both sides train with their own framework's one formula (torch's against Keras's): neither
    can take the other's. Where one side could (JAX, a weight file, your NumPy layers), a port can
    remove the difference."""
    return all(FIXED_CONVENTION.get(side.framework) == side.spec.optimizer.convention for side in (a, b))


def _fixed_variance(a: Reading, b: Reading) -> bool:
    """Both sides' frameworks store only the estimator each holds (torch unbiased, Keras biased):
    neither can store the other's. A JAX, weight-file or NumPy side can hold either."""
    return all(any(FIXED_VARIANCE.get(side.framework) == layer.running_variance
                   for layer in side.spec.layers if layer.kind == "batch_norm") for side in (a, b))


def _own_weights(b: Reading) -> bool:
    return "weights" in b.given


def _tensor_variants(kind: str, name: str, transform, applies) -> Callable[[Reading, Reading], Variants]:
    """Variants with one ``kind`` layer's tensor ``name`` of A transformed, where B holds its own."""
    def variants(a: Reading, b: Reading) -> Variants:
        if not _own_weights(b):
            return []
        found = []
        for position, (number, held) in enumerate(zip(a.spec.parameter_layers, a.tensors, strict=True)):
            layer = a.spec.numbered_layers[number - 1]
            if layer.kind != kind or name not in held or not applies(held[name]):
                continue
            tensors = [dict(layer_tensors) for layer_tensors in a.tensors]
            tensors[position][name] = np.ascontiguousarray(transform(held[name]))
            found.append((f"layer {number} ({kind}) {name}", replace(a, tensors=tensors)))
        return found
    return variants


def _square(array: np.ndarray) -> bool:
    return array.shape[0] == array.shape[1]


def _flatten_order(a: Reading, b: Reading) -> Variants:
    """The dense kernel after a flatten, its columns in the other flatten order's positions."""
    if not _own_weights(b):
        return []
    found, shape, order = [], None, None
    numbered = a.spec.numbered_layers
    for number, layer in enumerate(numbered, 1):
        if layer.kind == "flatten":
            shape = a.spec.layer_shapes[number - 1]
            order = layer.order
        elif layer.kind == "dense" and shape is not None:
            position = a.spec.parameter_layers.index(number)
            tensors = [dict(held) for held in a.tensors]
            tensors[position]["W"] = tensors[position]["W"][:, flatten_permutation(shape, order)]
            other = "channels_first" if order == "channels_last" else "channels_last"
            found.append((f"layer {number} (dense after flatten): its kernel's columns in {other} order, "
                          f"the flatten {order}", replace(a, tensors=tensors)))
            shape = None
        elif layer.kind != "flatten":
            shape = None
    return found


def _statistics_not_copied(a: Reading, b: Reading) -> Variants:
    if not _own_weights(b) or not a.statistics or not b.statistics:
        return []
    fresh = [(np.zeros_like(mean), np.ones_like(variance)) for mean, variance in a.statistics]

    def initial(statistics) -> bool:
        return all(np.all(mean == 0) and np.all(variance == 1) for mean, variance in statistics)

    if not initial(b.statistics) or initial(a.statistics):
        return []
    return [("every batch_norm layer: running mean 0 and variance 1 in B", replace(a, statistics=fresh))]


def _found_elsewhere(a: Reading, b: Reading) -> Variants:
    return []        # measured on the real model (ports.compare) or seen in the model (a Finding)


CAUSES: tuple[Cause, ...] = (
    Cause("batch_norm_momentum", "BatchNorm momentum",
          "torch's momentum m weights the new batch (ρ = 1 − m, default m = 0.1), Keras's momentum is the "
          "weight ρ of the old average (default 0.99): a port that copies the number moves the running "
          "statistics the wrong way (seen in inference mode after training)",
          _layer_field("batch_norm", "decay")),
    Cause("batch_norm_epsilon", "BatchNorm ε", "torch's default ε is 1e-5, Keras's 1e-3",
          _layer_field("batch_norm", "epsilon")),
    Cause("running_variance", "BatchNorm running-variance estimator",
          "torch stores the unbiased batch variance σ²·n/(n − 1) in its running average, Keras the biased σ²",
          _layer_field("batch_norm", "running_variance"), fixed=_fixed_variance),
    Cause("layer_norm_epsilon", "LayerNorm ε", "torch's default ε is 1e-5, Keras's 1e-3 (flax 1e-6)",
          _layer_field("layer_norm", "epsilon")),
    Cause("padding_split", "'same' padding split",
          "TensorFlow's 'same' pads the odd row/column at the bottom/right; torch's padding=k//2 pads both "
          "sides equally, so at stride 2 the two sample different pixels",
          _layer_field("conv2d", "padding")),
    Cause("leaky_relu_slope", "LeakyReLU slope",
          "torch's nn.LeakyReLU defaults to 0.01, Keras's LeakyReLU layer to 0.3 and "
          "keras.activations.leaky_relu to 0.2", _model_field("leaky_relu_slope")),
    Cause("gelu_form", "GELU exact vs tanh form",
          "torch's nn.GELU() and keras.activations.gelu are exact (erf); nn.GELU(approximate='tanh'), "
          "keras.ops.gelu and jax.nn.gelu default to the tanh form, up to 4.7e-4 apart", _gelu_form),
    Cause("l2_factor", "L2 as λ‖W‖² or (λ/2)‖W‖²",
          "Keras's L2(λ) regularizer adds λ‖W‖² (gradient 2λW); torch's weight_decay λ and the spec's l2 "
          "add λW to the gradient, as (λ/2)‖W‖² does", _l2(True)),
    Cause("l2", "L2 regularization", "only one side regularizes its kernels, or by another λ", _l2(False)),
    Cause("l2_vs_weight_decay", "L2 in the loss vs weight decay",
          "an L2 penalty in the loss (the spec's l2, Keras's kernel_regularizer) regularizes the kernels "
          "only and counts in the loss; torch's weight_decay and Keras's or AdamW's weight_decay decay "
          "every parameter (biases, BatchNorm's γ and β too) and add nothing to the loss",
          _l2_as_weight_decay),
    Cause("weight_decay_form", "weight decay coupled vs decoupled",
          "torch's weight_decay= adds λθ to the gradient, so it passes through momentum and Adam's moments; "
          "AdamW and every Keras optimizer's weight_decay= shrink θ by ηλθ beside the update (for plain SGD "
          "the two are one step)", _decay_form, fixed=_decay_form_fixed),
    Cause("weight_decay", "weight decay λ",
          "only one side decays its weights, or by another λ (AdamW's default is 0.01 in torch, 0.004 in "
          "Keras; every other optimizer's is 0)", _weight_decay),
    Cause("optimizer_convention", "optimizer convention",
          "where the frameworks' update formulas differ: Adam's ε (torch adds it to √v̂, Keras to √v before "
          "the bias correction), RMSprop's ε inside or outside the root, where momentum takes the "
          "learning rate", _optimizer_field("convention"), fixed=_own_conventions),
    Cause("float32_hyperparameters", "hyperparameters held in float32",
          "Keras holds its hyperparameters as float32 variables (a learning rate of 0.01 is "
          "0.009999999776…), torch and the engine as Python floats", _float32_hyperparameters,
          fixed=lambda a, b: True),
    Cause("optimizer_epsilon", "optimizer ε", "torch's Adam and RMSprop default to ε = 1e-8, Keras's to 1e-7",
          _optimizer_field("epsilon")),
    Cause("rmsprop_rho", "RMSprop decay", "torch's RMSprop alpha defaults to 0.99, Keras's rho to 0.9",
          _optimizer_field("rho")),
    Cause("adam_betas", "Adam β₁, β₂", "torch's betas=(0.9, 0.999), Keras's beta_1, beta_2 (same defaults)",
          _optimizer_field("beta1", "beta2")),
    Cause("learning_rate", "learning rate",
          "the frameworks' defaults differ (Keras SGD 0.01, RMSprop 0.001; torch RMSprop 0.01; optax none)",
          _optimizer_field("learning_rate")),
    Cause("momentum_left_out", "momentum left out", "one side runs plain SGD, the other SGD with momentum",
          _momentum_left_out),
    Cause("momentum", "momentum value", "the momentum coefficient differs", _optimizer_field("momentum")),
    Cause("dense_kernel_transpose", "dense kernel not transposed",
          "Keras's Dense kernel is (in, out), torch's Linear weight (out, in): a square kernel "
          "copied without .T loads silently", _tensor_variants("dense", "W", lambda w: w.T, _square)),
    Cause("conv_kernel_spatial_transpose", "conv kernel's height and width swapped",
          "Keras's kernel is HWIO, torch's OIHW: permute(3, 2, 1, 0) instead of (3, 2, 0, 1) swaps k_h and "
          "k_w, silently for a square kernel",
          _tensor_variants("conv2d", "W", lambda w: w.transpose(0, 1, 3, 2),
                           lambda w: w.shape[2] == w.shape[3])),
    Cause("conv_kernel_flip", "conv kernel flipped",
          "a true convolution (scipy.signal, Theano) flips the kernel; the frameworks' conv is "
          "a cross-correlation",
          _tensor_variants("conv2d", "W", lambda w: w[:, :, ::-1, ::-1], lambda w: True)),
    Cause("conv_channels_swap", "conv kernel's in and out channels swapped",
          "HWIO read as HWOI: silent when the layer has as many input as output channels",
          _tensor_variants("conv2d", "W", lambda w: w.transpose(1, 0, 2, 3), _square)),
    Cause("flatten_order", "Flatten order",
          "torch flattens NCHW maps channel by channel, Keras flattens NHWC maps pixel by pixel: "
          "the dense kernel after the flatten must have its columns re-ordered when the flatten "
          "changes", _flatten_order),
    Cause("running_statistics_not_copied", "BatchNorm running statistics not copied",
          "the running mean and variance are buffers, not parameters: a port that copies the parameters "
          "only starts from mean 0, variance 1", _statistics_not_copied),
    Cause("eval_mode", "train vs eval mode",
          "asked for inference, B's own code still uses the batch's statistics (BatchNorm) or drops "
          "units (dropout): a missing model.eval() or training=False", _found_elsewhere, "real model"),
    Cause("double_softmax", "double softmax",
          "a softmax output fed to a loss that applies its own softmax (torch's CrossEntropyLoss, Keras's "
          "from_logits=True): the loss and every gradient differ, the predictions do not", _found_elsewhere,
          "model itself"),
    Cause("double_sigmoid", "double sigmoid",
          "a sigmoid output fed to a loss that applies its own sigmoid (torch's BCEWithLogitsLoss, Keras's "
          "from_logits=True)", _found_elsewhere,
          "model itself"),
    Cause("initializer", "initializer defaults",
          "Keras draws kernels glorot_uniform, torch U(±1/√fan_in) (kaiming_uniform with a = √5): two sides "
          "left to their own draws start apart (compare loads A's weights into a side that brought none; "
          "ports.initializers)", _found_elsewhere, "model itself"),
    Cause("bce_clipping", "BCE probability clipping",
          "from probabilities, torch's BCELoss clamps each log at −100 and divides its backward by "
          "max(p(1 − p), 1e-12) (Keras on TensorFlow takes a sigmoid layer's logits back instead): the loss "
          "parts from BCE where an output saturates (seen on a torch side, TorchModel.clipped_outputs)",
          _found_elsewhere, "real model"),
)

BY_NAME = {cause.name: cause for cause in CAUSES}
