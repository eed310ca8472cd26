"""Where backprop leaks, measured in all four backends (the NumPy engine and the torch, Keras and
JAX twins), each from the same parameters on the same batch of real MNIST rows
(:func:`scratch.data.drawn_batch`), in the frameworks' default float32.

1. **Vanishing gradients.** A deep dense stack 784 → n × D → 10 (softmax, CCE). Backward,
   dZ_l = (dZ_{l+1} · W_{l+1}) ⊙ g′(Z_l) and dW_l = dZ_lᵀ · A_{l−1}: every hidden layer multiplies
   the signal by Wᵀ and by g′ ≤ 1/4 for the sigmoid, so ‖dW_1‖ ≪ ‖dW_L‖. Measured with Keras's
   default initializer (Glorot uniform) and torch's (U(±1/√fan_in)), and for contrast ReLU with
   He init (g′ ∈ {0, 1}, Var W = 2/fan_in keeps the signal's scale).
2. **Dead ReLU units.** A ReLU MLP trained by plain SGD with a learning rate far too large, on one
   fixed batch (full batch). A hidden unit that outputs 0 for every sample has g′ = 0 everywhere,
   so its W and b get zero gradient: in the first hidden layer (whose input, the batch, never
   changes) a dead unit stays dead, so that layer's count can only grow; deeper layers can revive
   when the layers below them move.
3. **Exploding.** A deep linear stack (identity activations, MSE) with W = gain · N(0, 1/fan_in),
   gain > 1: backward, ‖dZ_l‖ grows by about the gain per layer towards the input; SGD then
   overshoots, the loss grows by orders of magnitude per step until float32 overflows to inf and
   inf − inf gives NaN. Each backend's first non-finite loss and parameters are recorded.
4. **What each framework does about it by default** (:mod:`reports.study.leak_defaults`).

``leaks_data`` is JSON-ready: a non-finite number is stored as the string "inf", "-inf" or "nan".
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np

from judge.tolerances import tolerance
from reports.render.blocks import Details, Svg, Table
from reports.study.chart import Series, line_chart
from reports.study.leak_defaults import framework_defaults
from scratch.data import drawn_batch
from scratch.errors import SpecError
from scratch.model import Network
from scratch.spec import DTYPES, ModelSpec, OptimizerSpec
from twins.backends import BACKENDS, available_backends, make_backend

BACKEND_ORDER = ("scratch", "torch", "keras", "jax")
# backend → (colour, dash, width, opacity): the engine wide and faint under the three twins
STYLE = {"scratch": ("#7f7f7f", "", 7.0, 0.35), "torch": ("#d62728", "", 2.0, 1.0),
         "keras": ("#1f77b4", "7 4", 2.0, 1.0), "jax": ("#2ca02c", "2 3", 2.6, 1.0)}
# the vanishing study's stacks: (hidden activation, initializer, what it is)
VANISHING_STACKS = (("sigmoid", "glorot_uniform", "sigmoid, Glorot uniform (Keras's default)"),
                    ("sigmoid", "torch_default", "sigmoid, U(±1/√fan_in) (torch's default)"),
                    ("relu", "he_normal", "ReLU, He normal"))


@dataclass(frozen=True)
class LeakSettings:
    """The sizes of the three experiments (the defaults run in a few seconds on two cores)."""

    batch: int = 32                     # MNIST rows, the same batch everywhere
    depth: int = 8                      # hidden layers of the vanishing stacks
    width: int = 32                     # units per hidden layer (vanishing, exploding)
    dead_width: int = 64                # units per hidden layer of the dead-ReLU MLP (two layers)
    dead_steps: int = 12
    dead_every: int = 2                 # count dead units every this many steps
    dead_learning_rate: float = 1.5
    explode_depth: int = 7              # hidden layers of the linear stack
    explode_gain: float = 1.5
    explode_learning_rate: float = 1e-3
    explode_steps: int = 8
    dtype: str = "float32"
    seed: int = 0
    backends: tuple[str, ...] = BACKEND_ORDER

    def __post_init__(self):
        for name in ("batch", "depth", "width", "dead_width", "dead_steps", "dead_every", "explode_depth",
                     "explode_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SpecError(f"leak settings: {name} must be an integer >= 1, got {value!r}")
        for name in ("dead_learning_rate", "explode_gain", "explode_learning_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise SpecError(f"leak settings: {name} must be a finite number > 0, got {value!r}")
        if self.dtype not in DTYPES:
            raise SpecError(f"leak settings: dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        unknown = [name for name in self.backends if name not in BACKENDS]
        if unknown or "scratch" not in self.backends:
            raise SpecError(f"leak settings: backends must include scratch and name only "
                            f"{', '.join(BACKENDS)}; got {', '.join(self.backends)}")
        object.__setattr__(self, "backends", tuple(self.backends))


def number(value) -> float | str:
    """A float, or "inf" / "-inf" / "nan" (JSON has no non-finite numbers)."""
    value = float(value)
    if math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def as_float(value) -> float:
    """The inverse of :func:`number`."""
    return float(value)


def leaks_data(settings: LeakSettings | None = None) -> dict:
    """Every measurement of the section (see the module docstring). Frameworks are imported by the
    backends: call :func:`twins.hygiene.configure_frameworks` first."""
    settings = settings or LeakSettings()
    started = time.perf_counter()
    installed = available_backends()
    backends = [name for name in settings.backends if name in installed]
    skipped = {name: "not installed" for name in settings.backends if name not in installed}
    settings_dict = dataclasses.asdict(settings)
    settings_dict["backends"] = list(settings.backends)
    batch = mnist_batch(settings)
    data = {"settings": settings_dict, "backends": backends, "skipped": skipped,
            "tolerance": tolerance(settings.dtype, "gradient"), "timings": {}}
    parts = {"vanishing": lambda: [vanishing(settings, backends, batch, activation, init, label)
                                   for activation, init, label in VANISHING_STACKS],
             "dead": lambda: dead_relu(settings, backends, batch),
             "exploding": lambda: exploding(settings, backends, batch),
             "defaults": framework_defaults}
    for name, part in parts.items():
        begun = time.perf_counter()
        with np.errstate(all="ignore"):              # the exploding run overflows on purpose
            data[name] = part()
        data["timings"][name] = time.perf_counter() - begun
    data["seconds"] = time.perf_counter() - started
    return data


def mnist_batch(settings: LeakSettings) -> tuple[np.ndarray, np.ndarray]:
    """(x (m, 784), labels (m,)): ``settings.batch`` MNIST training rows drawn from ``settings.seed``
    (:func:`scratch.data.drawn_batch`), in ``settings.dtype``; every experiment uses this batch."""
    spec = ModelSpec((784, 10), output_activation="softmax", dtype=settings.dtype, seed=settings.seed)
    return drawn_batch(spec, settings.batch, settings.seed)


def _norms(trace: dict, stem: str, layers: int) -> list[float | str]:
    return [number(np.linalg.norm(np.asarray(trace[f"{stem}{layer}"], np.float64)))
            for layer in range(1, layers + 1)]


def vanishing(settings: LeakSettings, backends, batch, activation: str, init: str, label: str) -> dict:
    """‖dW_l‖ and ‖dZ_l‖ (Frobenius) of every layer at the start, per backend, and the ratio
    ‖dW_L‖ / ‖dW_1‖ (output layer over first layer)."""
    sizes = (784, *(settings.width,) * settings.depth, 10)
    spec = ModelSpec(sizes, activation, "softmax", init=init, dtype=settings.dtype, seed=settings.seed)
    network = Network(spec)
    x, targets = batch[0], network.targets(batch[1])
    tensors = network.tensors
    layers = len(sizes) - 1
    out = {"label": label, "activation": activation, "init": init, "layers": list(range(1, layers + 1)),
           "dW": {}, "dZ": {}, "ratio": {}, "loss": {}}
    for name in backends:
        trace = make_backend(name, spec, tensors=tensors).trace(x, targets)
        out["dW"][name], out["dZ"][name] = _norms(trace, "dW", layers), _norms(trace, "dZ", layers)
        out["ratio"][name] = number(as_float(out["dW"][name][-1]) / as_float(out["dW"][name][0]))
        out["loss"][name] = number(trace["loss"])
    return out


def dead_counts(trace: dict, hidden: int) -> list[int]:
    """Per hidden layer: the units whose A_l is 0 for every sample of the batch."""
    return [int(np.all(np.asarray(trace[f"A{layer}"]) == 0, axis=0).sum()) for layer in range(1, hidden + 1)]


def dead_relu(settings: LeakSettings, backends, batch) -> dict:
    """Dead units per hidden layer at every ``dead_every``-th step (and the last), per backend, and
    each step's loss (before its update)."""
    sizes = (784, settings.dead_width, settings.dead_width, 10)
    spec = ModelSpec(sizes, "relu", "softmax", init="he_normal", dtype=settings.dtype, seed=settings.seed,
                     optimizer=OptimizerSpec(learning_rate=settings.dead_learning_rate))
    network = Network(spec)
    x, targets = batch[0], network.targets(batch[1])
    tensors = network.tensors
    hidden = len(sizes) - 2
    steps = sorted({*range(0, settings.dead_steps + 1, settings.dead_every), settings.dead_steps})
    out = {"units": [settings.dead_width] * hidden, "learning_rate": settings.dead_learning_rate,
           "steps": steps, "counts": {}, "loss": {}}
    for name in backends:
        backend = make_backend(name, spec, tensors=tensors)
        counts, losses = [], []
        for step in range(settings.dead_steps + 1):
            if step in steps:
                counts.append(dead_counts(backend.trace(x, targets), hidden))
            if step < settings.dead_steps:
                losses.append(number(backend.train_step(x, targets)))
        out["counts"][name], out["loss"][name] = counts, losses
    return out


def global_norm(trace: dict) -> float:
    """‖g‖ = √(Σ ‖dW_l‖² + ‖db_l‖²) over the trainable tensors, what a global-norm clip compares."""
    return math.sqrt(sum(float(np.sum(np.square(trace[name], dtype=np.float64)))
                         for name in trace if name[:2] in ("dW", "db")))


def _finite_parameters(backend) -> bool:
    return all(np.isfinite(array).all() for layer in backend.tensors() for array in layer.values())


def exploding(settings: LeakSettings, backends, batch) -> dict:
    """At the start: ‖dW_l‖ and ‖dZ_l‖ per layer; then per SGD step the loss (before the update)
    and the global gradient norm ‖g‖ that a ``clipnorm`` would see; the first step whose loss is
    not finite, and the first step after which a parameter is not finite (None: never)."""
    sizes = (784, *(settings.width,) * settings.explode_depth, 10)
    spec = ModelSpec(sizes, "identity", "identity", loss="mse", init="lecun_normal",
                     dtype=settings.dtype, seed=settings.seed,
                     optimizer=OptimizerSpec(learning_rate=settings.explode_learning_rate))
    network = Network(spec)
    x, targets = batch[0], network.targets(batch[1])
    gain = np.asarray(settings.explode_gain, settings.dtype)
    tensors = [{"W": layer["W"] * gain, "b": np.zeros_like(layer["b"])} for layer in network.tensors]
    layers = len(sizes) - 1
    out = {"layers": list(range(1, layers + 1)), "gain": settings.explode_gain,
           "learning_rate": settings.explode_learning_rate, "dW": {}, "dZ": {}, "loss": {},
           "gradient_norm": {}, "first_nonfinite_loss": {}, "first_nonfinite_parameters": {}, "raised": {}}
    for name in backends:
        backend = make_backend(name, spec, tensors=tensors)
        trace = backend.trace(x, targets)
        out["dW"][name], out["dZ"][name] = _norms(trace, "dW", layers), _norms(trace, "dZ", layers)
        losses, norms, bad_parameters, raised = [], [], None, None
        try:
            for step in range(settings.explode_steps):
                step_trace = trace if step == 0 else backend.trace(x, targets)
                norms.append(number(global_norm(step_trace)))
                losses.append(number(backend.train_step(x, targets)))
                if bad_parameters is None and not _finite_parameters(backend):
                    bad_parameters = step
        except (FloatingPointError, RuntimeError) as error:   # jax_debug_nans, torch's anomaly mode
            raised = f"{type(error).__name__}: {error}"
        out["loss"][name], out["gradient_norm"][name] = losses, norms
        out["first_nonfinite_loss"][name] = next((step for step, loss in enumerate(losses)
                                                  if isinstance(loss, str)), None)
        out["first_nonfinite_parameters"][name] = bad_parameters
        out["raised"][name] = raised
    return out


# -- checks --------------------------------------------------------------------------------------

def disagreements(values: dict[str, list], bound: float, reference: str = "scratch") -> list[dict]:
    """Every (backend, index) whose value differs from ``reference``'s by more than ``bound``
    relative to max(|reference value|, tiny): [{backend, index, actual, desired, relative}]. A
    non-finite value agrees only with the same non-finite value."""
    out = []
    desired_values = values[reference]
    for backend, actual_values in values.items():
        if backend == reference:
            continue
        for index, (actual, desired) in enumerate(zip(actual_values, desired_values, strict=True)):
            actual, desired = as_float(actual), as_float(desired)
            if not (math.isfinite(actual) and math.isfinite(desired)):
                same = (math.isnan(actual) and math.isnan(desired)) or actual == desired
                relative = 0.0 if same else math.inf
            else:
                relative = abs(actual - desired) / max(abs(desired), np.finfo(np.float64).tiny)
            if relative > bound:
                out.append({"backend": backend, "index": index, "actual": number(actual),
                            "desired": number(desired), "relative": number(relative)})
    return out


def agreement_rows(data: dict) -> list[dict]:
    """Every disagreement beyond the gradient tolerance in the vanishing and exploding norms, each
    with where it is (an empty list: the four backends agree)."""
    bound = data["tolerance"]
    out = []
    for stack in data["vanishing"]:
        for quantity in ("dW", "dZ"):
            out += [{"where": f"{stack['label']}: {quantity}{row['index'] + 1}", **row}
                    for row in disagreements(stack[quantity], bound)]
    for quantity in ("dW", "dZ"):
        out += [{"where": f"exploding: {quantity}{row['index'] + 1}", **row}
                for row in disagreements(data["exploding"][quantity], bound)]
    return out


# -- blocks --------------------------------------------------------------------------------------

def growth(norms: list) -> float:
    """The mean factor per layer by which ‖dZ_l‖ grows from the last layer to the first:
    (‖dZ_1‖/‖dZ_L‖)^(1/(L−1))."""
    first, last = as_float(norms[0]), as_float(norms[-1])
    return (first / last) ** (1 / (len(norms) - 1)) if len(norms) > 1 and last > 0 else math.nan


def fmt(value) -> str:
    """A norm or loss, 3 significant digits; "inf"/"nan" as they are."""
    return value if isinstance(value, str) else f"{value:.3g}"


def backend_series(values: dict[str, list], xs: list, suffix=None) -> list[Series]:
    """One :class:`Series` per backend, in its :data:`STYLE`; non-finite values are left out."""
    out = []
    for backend, ys in values.items():
        colour, dash, width, opacity = STYLE[backend]
        points = [(x, None if isinstance(y, str) else y) for x, y in zip(xs, ys, strict=True)]
        name = backend + (suffix(backend) if suffix else "")
        out.append(Series(name, points, colour, dash, width, opacity))
    return out


def vanishing_blocks(stacks: list[dict], id: str = "leaks") -> list:
    """One chart per stack on one shared log scale, then every norm in a collapsed table."""
    norms = [as_float(v) for stack in stacks for values in stack["dW"].values() for v in values]
    norms = [v for v in norms if math.isfinite(v) and v > 0]
    y_range = (min(norms), max(norms)) if norms else None
    blocks = []
    for stack in stacks:
        svg = line_chart(backend_series(stack["dW"], stack["layers"]),
                         title=f"‖dW_l‖ per layer: {stack['label']}", x_label="layer l (1 = input side)",
                         y_label="‖dW_l‖ (log)", log_y=True, y_range=y_range)
        ratios = ", ".join(f"{backend} {fmt(ratio)}" for backend, ratio in stack["ratio"].items())
        blocks.append(Svg(svg, f"‖dW_l‖ of every layer, {stack['label']}, one line per backend; "
                               f"‖dW_L‖/‖dW_1‖: {ratios}"))
    columns = ["layer", *(f"{stack['label']}: {backend}" for stack in stacks for backend in stack["dW"])]
    rows = [[str(layer), *(fmt(stack["dW"][backend][index]) for stack in stacks for backend in stack["dW"])]
            for index, layer in enumerate(stacks[0]["layers"])]
    rows.append(["‖dW_L‖/‖dW_1‖",
                 *(fmt(stack["ratio"][backend]) for stack in stacks for backend in stack["dW"])])
    table = Table(columns, rows, id=f"{id}-vanishing",
                  caption="Frobenius norm of dL/dW_l at the start, same weights and batch in every backend")
    return [*blocks, Details("‖dW_l‖ of every layer, every backend (table)", [table])]


def dead_blocks(dead: dict, id: str = "leaks") -> list:
    """The total count per checkpoint as a chart, every layer's count in a table."""
    hidden = len(dead["units"])
    totals = {backend: [sum(counts) for counts in per_step] for backend, per_step in dead["counts"].items()}
    svg = line_chart(backend_series(totals, dead["steps"]), title="dead ReLU units (all hidden layers)",
                     x_label="SGD step", y_label=f"dead units of {sum(dead['units'])}")
    columns = ["step", *(f"{backend}: layer {layer}" for backend in dead["counts"]
                         for layer in range(1, hidden + 1))]
    rows = [[str(step), *(str(dead["counts"][backend][index][layer]) for backend in dead["counts"]
                          for layer in range(hidden))] for index, step in enumerate(dead["steps"])]
    return [Svg(svg, "dead ReLU units per step checkpoint, one line per backend"),
            Table(columns, rows, id=f"{id}-dead",
                  caption=f"units (of {dead['units'][0]} per layer) that output 0 for every sample of "
                          "the batch")]


def _step(value) -> str:
    return "never" if value is None else str(value)


def exploding_blocks(explode: dict, id: str = "leaks") -> list:
    """The loss per step (log scale, up to its last finite value), the per-layer norms at the
    start, the loss and ‖g‖ per step, and where each backend first leaves the finite numbers."""
    backends = list(explode["loss"])
    steps = list(range(len(explode["loss"][backends[0]]))) if backends else []

    def suffix(backend):
        first = explode["first_nonfinite_loss"][backend]
        return "" if first is None else f": {explode['loss'][backend][first]} at {first}"

    svg = line_chart(backend_series(explode["loss"], steps, suffix),
                     title="loss per SGD step, deep linear stack", x_label="SGD step",
                     y_label="loss (log)", log_y=True)
    layers = Table(["layer", *(f"‖dZ_l‖ {backend}" for backend in backends),
                    *(f"‖dW_l‖ {backend}" for backend in backends)],
                   [[str(layer), *(fmt(explode["dZ"][backend][index]) for backend in backends),
                     *(fmt(explode["dW"][backend][index]) for backend in backends)]
                    for index, layer in enumerate(explode["layers"])],
                   caption="gradient norms per layer at the start", id=f"{id}-exploding-layers")
    per_step = Table(["step", *(f"loss {backend}" for backend in backends),
                      *(f"‖g‖ {backend}" for backend in backends)],
                     [[str(step), *(fmt(explode["loss"][backend][step]) for backend in backends),
                       *(fmt(explode["gradient_norm"][backend][step]) for backend in backends)]
                      for step in steps],
                     caption="loss (before the step's update) and global gradient norm ‖g‖ per step",
                     id=f"{id}-exploding-steps")
    first = Table(["backend", "first non-finite loss (step)", "first non-finite parameters (after step)",
                   "raised an error"],
                  [[backend, _step(explode["first_nonfinite_loss"][backend]),
                    _step(explode["first_nonfinite_parameters"][backend]), explode["raised"][backend] or "no"]
                   for backend in backends],
                  caption="where each backend first leaves the finite numbers", id=f"{id}-nonfinite")
    return [Svg(svg, "the loss of every step until it is no longer finite, one line per backend"),
            layers, per_step, first]


def defaults_blocks(defaults: dict, id: str = "leaks") -> list:
    """The three measured tables of :mod:`reports.study.leak_defaults`."""
    blocks = [Table(["framework", "what was run", "measured", "meaning"],
                    [[row["framework"], row["what"], row["measured"], row["meaning"]]
                     for row in defaults["optimizers"]],
                    caption="gradient clipping by default: one SGD step with a huge gradient",
                    id=f"{id}-clipping")]
    if defaults["losses"]:
        logits = defaults["losses"][0]["logits"]
        rows = [[row["framework"], row["what"],
                 *(f"{loss:.4g}, {gradient + 0.0:.3g}"
                   for loss, gradient in zip(row["loss"], row["gradient"], strict=True))]
                for row in defaults["losses"]]
        blocks.append(Table(["framework", "binary cross-entropy", *(f"z = {z:g}: L, dL/dz" for z in logits)],
                            rows, id=f"{id}-losses",
                            caption="a confidently wrong sigmoid output (y = 1, logit z), float32: the loss "
                                    "and the gradient each function passes back"))
    blocks.append(Table(["framework", "what was read", "measured", "meaning"],
                        [[row["framework"], row["what"], row["measured"], row["meaning"]]
                         for row in defaults["nan_checks"]],
                        caption="NaN and inf checks by default", id=f"{id}-nan-checks"))
    return blocks


def leaks_blocks(data: dict, id: str = "leaks") -> list:
    """The section's blocks: each experiment's paragraph, chart(s) and table(s), then the frameworks'
    defaults and what they mean for each leak; ``id`` prefixes every table's id."""
    s, explode, dead = data["settings"], data["exploding"], data["dead"]
    mismatches = agreement_rows(data)
    if mismatches:
        agree = (f"{len(mismatches)} norms differ beyond the gradient tolerance ({data['tolerance']:.0e}): "
                 + "; ".join(f"{row['where']} {row['backend']} {fmt(row['actual'])} vs {fmt(row['desired'])}"
                             for row in mismatches[:5]))
    else:
        agree = (f"The backends agree on every norm within the gradient tolerance ({data['tolerance']:.0e}), "
                 "so each chart's lines, one per backend, lie on top of each other.")
    skipped = "".join(f" {backend}: {why}." for backend, why in data["skipped"].items())
    sigmoid, relu = data["vanishing"][0], data["vanishing"][-1]
    width = dead["units"][0]
    return [
        f"Each experiment starts every backend ({', '.join(data['backends'])}) from the same parameters on "
        f"the same {s['batch']} MNIST rows, in {s['dtype']}; measured in {data['seconds']:.1f} s."
        f"{skipped} {agree}",
        f"Vanishing gradients. {s['depth']} hidden layers of {s['width']} units, softmax output, "
        "cross-entropy. Backward, dZ_l = (dZ_{l+1} · W_{l+1}) ⊙ g′(Z_l): each sigmoid layer multiplies "
        "the signal by at most 1/4, so the first layer learns orders of magnitude slower than the last "
        f"(‖dW_L‖/‖dW_1‖ = {fmt(sigmoid['ratio']['scratch'])} with Glorot init). With ReLU and He init "
        f"(g′ ∈ {{0, 1}}, Var W = 2/fan_in) the ratio is {fmt(relu['ratio']['scratch'])}.",
        *vanishing_blocks(data["vanishing"], id),
        f"Dead ReLU units. 784 → {width} → {width} → 10, ReLU, He init, plain SGD at learning rate "
        f"{dead['learning_rate']:g} on one fixed batch of {s['batch']} rows. A unit that outputs 0 for every "
        "sample gets g′ = 0, hence dW = db = 0: in layer 1, whose input never changes, it stays dead (the "
        "count can only grow); a deeper unit can revive when the layer below it moves.",
        *dead_blocks(dead, id),
        f"Exploding. {s['explode_depth']} linear hidden layers (identity activations, MSE), "
        f"W = {explode['gain']:g} · N(0, 1/fan_in), plain SGD at {explode['learning_rate']:g}. Backward, "
        f"‖dZ_l‖ grows towards the input, here ×{growth(explode['dZ']['scratch']):.2f} per layer (the "
        f"gain {explode['gain']:g} times the growth of a random product); each step overshoots more than "
        "the last, until float32 overflows to inf and inf − inf gives NaN.",
        *exploding_blocks(explode, id),
        "What each framework does about it by default, measured in the installed versions: none clips "
        "gradients, none stops on a NaN. Each twin computes its cross-entropy from the logits, so no "
        "probability clipping applies to it; a user who feeds probabilities gets torch's clamp "
        "(log p ≥ −100, and a backward divided by max(p(1 − p), 1e-12): dL/dz shrinks beyond z ≈ −27.6) "
        "or Keras's clip to [ε, 1 − ε] (dL/dz = 0 once σ(z) < ε: the gradient vanishes entirely, unless "
        "p came from Keras's own sigmoid, which carries its logits).",
        *defaults_blocks(data["defaults"], id),
        "What this means for the leaks above: vanishing gradients and dead units are left to the "
        "initializer and learning rate the user picks (Keras's default Glorot and torch's default "
        "U(±1/√fan_in) both vanish through the sigmoid stack, as measured); the exploding step reaches the "
        "weights unclipped in every framework unless `clipnorm`/`global_clipnorm` (Keras), "
        "`torch.nn.utils.clip_grad_norm_` (torch) or `optax.clip_by_global_norm` (optax) is added, and "
        "the NaN that follows is trained through without an error."]
