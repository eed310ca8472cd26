"""The report's content, independent of its format: sections of paragraphs, tables, images and
preformatted text, built from the results dict by pure functions.

Both renderers (``render_html``, ``render_markdown``) lay out the same :class:`Section` list, so
every number appears formatted once, the same way, in both files; both open with
:func:`verdict_line` (``reports.verdict.report``). Number formats:

* errors: 3 significant digits, ``1.23e-16``; an exact zero is ``0``;
* tolerances: ``1e-13``;
* accuracies: percent with 2 decimals, ``92.88 %``; spreads and differences in percentage
  points (``pp``) with 2 decimals;
* heat-map cells: the error in units of ε with 3 significant digits, ``4.81`` (``reports.render.heatmap``);
  the smallest tolerance that passes a failing row: ``3.700e-04``, an update's in whole ulps;
* a value that was not finite (``null`` in the JSON): ``n/a``;
* benchmark (section 7, only with ``report --bench``): ms per step with 3 decimals, ratios to
  scratch (the CNN step's: to the fastest backend) with 2, GFLOP/s and % of the GEMM peak with 1,
  memory in whole MiB, wall times in s with 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from reports.render import heatmap
from reports.verdict.report import by_how_much, passes_at, report_verdict, where
from scratch.spec import ModelSpec


@dataclass(frozen=True)
class Table:
    """``classes``, when given, has one CSS class string per cell of ``rows`` (the HTML colours
    status and heat-map cells by it; Markdown ignores it); ``css`` is the table's own class."""

    columns: list[str]
    rows: list[list[str]]
    caption: str = ""
    id: str = ""
    classes: list[list[str]] | None = None
    css: str = ""

    def __post_init__(self):
        if self.classes is not None and [len(r) for r in self.classes] != [len(r) for r in self.rows]:
            raise ValueError(f"table {self.id or self.caption!r}: classes do not match the cells")


@dataclass(frozen=True)
class Image:
    file: str
    alt: str


@dataclass(frozen=True)
class Pre:
    text: str


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    blocks: list = field(default_factory=list)    # str (a paragraph) | Table | Image | Pre


def fmt_err(value) -> str:
    if value is None:
        return "n/a"
    return "0" if value == 0 else f"{value:.2e}"


def fmt_tol(value) -> str:
    return f"{value:.0e}"


def fmt_pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def fmt_pp(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


# the hyperparameters each optimizer reads (the others keep their defaults, see OptimizerSpec)
OPTIMIZER_FIELDS = {"sgd": ("learning_rate",), "momentum": ("learning_rate", "momentum"),
                    "rmsprop": ("learning_rate", "rho", "epsilon", "momentum"),
                    "adam": ("learning_rate", "beta1", "beta2", "epsilon")}


def fmt_optimizer(optimizer: dict) -> str:
    """``adam, torch convention: learning_rate=0.001, beta1=0.9, …`` from an OptimizerSpec dict."""
    fields = OPTIMIZER_FIELDS.get(optimizer["name"], ())
    return (f"{optimizer['name']}, {optimizer['convention']} convention: "
            + ", ".join(f"{name}={optimizer[name]:g}" for name in fields))


def fmt_ms(seconds: float) -> str:
    return f"{1e3 * seconds:.3f}"


def fmt_ratio(value: float) -> str:
    return f"{value:.2f}"


def fmt_rate(value: float) -> str:
    """GFLOP/s and percentages of the GEMM peak."""
    return f"{value:.1f}"


def fmt_cell(value) -> str:
    """Any JSON scalar, for generic tables."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def sections(results: dict, images: dict[str, str]) -> list[Section]:
    """Every section of the report, in order; ``images``: plot key → file name."""
    from reports.render import cnn

    out = [_overview(results), _parity(results, images), _curves(results, images),
           _divergence(results, images), _seeds(results), _variants(results),
           _conventions(results, images)]
    if "cnn" in results:
        out.append(cnn.section(results, images))
    out.append(_environment(results))
    if "bench" in results or "bench_cnn" in results:
        blocks = _bench(results["bench"], images) if "bench" in results else []
        if "bench_cnn" in results:
            blocks += cnn.bench_blocks(results["bench_cnn"], images)
        out.append(Section("bench", "7. Benchmark: one training step per backend", blocks))
    if "explain" in results:
        out.append(_explain(results["explain"]))
    return out


def status_class(text: str) -> str:
    """CSS class of a status cell: ``ok`` (ok, yes), ``fail`` (FAIL…, NO), else ``neutral``
    (explained, skipped, …)."""
    if text in ("ok", "yes"):
        return "ok"
    if text.startswith("FAIL") or text == "NO":
        return "fail"
    return "neutral"


def _status_classes(rows: list[list[str]], status_columns: tuple[int, ...]) -> list[list[str]]:
    """``status_class`` for the cells of ``status_columns`` (negative: from the end), "" elsewhere."""
    out = []
    for row in rows:
        wanted = {i % len(row) for i in status_columns}
        out.append([status_class(cell) if i in wanted else "" for i, cell in enumerate(row)])
    return out


def verdict_line(results: dict) -> str:
    """The report's first line (``reports.verdict.report``), recomputed from the rows."""
    return report_verdict(results)["line"]


def _failures_table(failures: list[dict], id: str, caption: str) -> list[Table]:
    """Every failing comparison: where, by how much, the smallest tolerance that would pass it,
    and the command that reproduces it."""
    if not failures:
        return []
    rows = [[where(f), by_how_much(f), passes_at(f), f["reproduce"]] for f in failures]
    return [Table(["comparison", "by how much", "smallest tolerance that passes", "reproduce"], rows,
                  caption=caption, id=id, classes=[["fail", "", "", ""] for _ in rows])]


def _image(images, key, alt) -> list[Image]:
    return [Image(images[key], alt)] if key in images else []


def _overview(results: dict) -> Section:
    backends = results["backends"]
    blocks = [
        f"Mode: {results['mode']}. Created {results['created_utc']}. "
        f"Scenarios ran in {results['wall_time_s']:.1f} s.",
        f"Command: {results['command'] or '(not recorded)'}",
        "Backends: " + (", ".join(backends["used"]) or "none"),
    ]
    blocks += [f"Skipped backend {name}: {why}" for name, why in backends["skipped"].items()]
    if results["mode"] != "full":
        blocks.append("This is not the seeds' full setting: the seeds' MNIST experiments ran on a fixed "
                      "subset of the training set (marked REDUCED below). `backprop-parity report --full` "
                      "runs the seeds' settings.")
    blocks.append(Table(["scenario", "wall time (s)"],
                        [[name, f"{seconds:.1f}"] for name, seconds in results["timings_s"].items()],
                        id="timings"))
    return Section("overview", "Overview", blocks)


def _parity(results: dict, images) -> Section:
    parity = results["parity"]
    blocks = [f"One batch ({parity['data']}) through every backend from the same parameters; each "
              "quantity compared per backend pair (actual vs desired, the desired one being the "
              "reference): max abs error max|a − d| and max rel error max|a − d| / max|d|, against "
              "the tolerance table."]
    for dtype in ("float64", "float32"):
        rows = [row for row in parity["rows"] if row["dtype"] == dtype]
        if not rows:
            continue
        pairs = list(dict.fromkeys(row["pair"] for row in rows))
        by_key = {(row["quantity"], row["pair"]): row for row in rows}
        columns = ["quantity", "layer"]
        for pair in pairs:
            columns += [f"{pair} max abs", f"{pair} max rel"]
        columns += ["tolerance (rel)", "status"]
        table_rows = []
        for quantity in dict.fromkeys(row["quantity"] for row in rows):
            cells = [by_key.get((quantity, pair)) for pair in pairs]
            present = [c for c in cells if c is not None]
            line = [quantity, "" if present[0]["layer"] is None else str(present[0]["layer"])]
            for cell in cells:
                line += ["", ""] if cell is None else [fmt_err(cell["abs_error"]), fmt_err(cell["rel_error"])]
            failed = [f"{c['pair']} (passes at {_passes_at_row(c)})" for c in present if not c["ok"]]
            judged = " *" if any(c.get("note") for c in present) else ""
            line += [fmt_tol(present[0]["tolerance"]), ("ok" if not failed else "FAIL: " + ", ".join(failed))
                     + judged]
            table_rows.append(line)
        blocks.append(Table(columns, table_rows, caption=f"{dtype}", id=f"parity-{dtype}",
                            classes=_status_classes(table_rows, (-1,))))
        notes = dict.fromkeys(f"{row['pair']}: {row['note']}" for row in rows if row.get("note"))
        blocks += [f"* ({dtype}) {note}" for note in notes]      # each once, for the rows marked *
    blocks += _failures_table([f for f in report_verdict(results)["failures"] if f["section"] == "parity"],
                              "parity-failures", "failing parity comparisons")
    blocks += _heat_maps(parity["rows"])
    blocks += _image(images, "parity_errors", "max relative error per quantity and backend pair")
    return Section("parity", "1. Forward and gradient parity", blocks)


def _passes_at_row(row: dict) -> str:
    return "no tolerance" if row["rel_error"] is None else f"{row['rel_error']:.3e}"


def _heat_maps(rows: list[dict]) -> list:
    """Per dtype and pair, the layer × quantity grid of errors in ε units (``reports.render.heatmap``)."""
    if not rows:
        return []
    blocks = ["Heat map: each comparison's normwise error in units of the dtype's machine epsilon ε "
              "(rel error / ε, i.e. ulps of the largest reference element; float64 ε = 2^-52 ≈ 2.2e-16, "
              "float32 ε = 2^-23 ≈ 1.2e-7), per layer (rows; — is the loss) and quantity (columns). "
              "Colour by log10 of that number; a comparison over its bound is marked FAIL. The largest "
              "elementwise error in ulps of each element is in results.json (max_ulps, where): it is "
              "not shown, since an element that cancels to nearly zero has a tiny ulp.",
              Table(heatmap.LEGEND, [list(heatmap.LEGEND)],
                    caption="colour scale (ε units)", id="heat-legend",
                    classes=[heatmap.LEGEND_CLASSES], css="heat")]
    for dtype in ("float64", "float32"):
        for pair in dict.fromkeys(row["pair"] for row in rows if row["dtype"] == dtype):
            these = [row for row in rows if row["dtype"] == dtype and row["pair"] == pair]
            labels, columns, cells = heatmap.grid(these)
            table_rows, classes = [], []
            for label in labels:
                line, line_classes = [label], [""]
                for column in columns:
                    row = cells.get((label, column))
                    if row is None:
                        line.append("")
                        line_classes.append("")
                        continue
                    value = heatmap.eps_units(row["rel_error"], dtype)
                    line.append(heatmap.fmt_eps(value) + ("" if row["ok"] else " FAIL"))
                    line_classes.append(heatmap.heat_class(value) + ("" if row["ok"] else " fail"))
                table_rows.append(line)
                classes.append(line_classes)
            blocks.append(Table(["layer", *columns], table_rows,
                                caption=f"{dtype}, {pair}: error in ε (bounds: "
                                        f"{heatmap.bounds_text(these, dtype)})",
                                id=f"heat-{dtype}-{pair.replace(' ', '-')}", classes=classes, css="heat"))
    return blocks


def _curves(results: dict, images) -> Section:
    curves = results["curves"]
    spec = curves["spec"]
    sizes = list(ModelSpec.from_dict(spec).layer_sizes)
    blocks = [f"{sizes} {spec['init']} init, {spec['dtype']}, batch {spec['batch_size']}, "
              f"{curves['steps']} steps on {curves['data']}; every backend runs the same plan (batches in "
              "the same order) from the same parameters. A framework runs only the conventions its "
              "optimizers express (JAX's optax: torch's, Keras's but its Adam, and optax's own); plain "
              "SGD is the same update in all, so every backend runs it."]
    blocks.append(Table(["optimizer", "hyperparameters"],
                        [[config, fmt_optimizer(opt)] for config, opt in curves["optimizers"].items()],
                        id="curve-optimizers"))
    blocks.append("The verdict is per step: before every step the framework is re-synchronized to the "
                  "NumPy engine's parameters and optimizer state, its gradients are held to the gradient "
                  "bound and its update, fed its own gradients, must match the engine's update of the same "
                  "gradients elementwise within a few ulps. The free-running curves are measured: the "
                  "first step where they part is named with its cause (a ReLU kink flipped by rounding, "
                  "an adaptive step amplifying a near-zero gradient), or a higher-precision run of the "
                  "engine arbitrates.")
    rows = [[c["config"], c["pair"], _step_worst(c["step_gradient"]),
             _step_worst(c["step_update"], ulps=True),
             f"{fmt_err(c['curve_rel_error'])} / {fmt_err(c['parameters_rel_error'])}", c["free_running"],
             _curve_status(c)] for c in curves["checks"]]
    blocks.append(Table(
        ["optimizer", "pair", "per-step gradient (worst)", "per-step update (worst)",
         "free-running loss / parameters", "free-running", "status"],
        rows, id="curve-checks", classes=_status_classes(rows, (-1,))))
    blocks += _failures_table([f for f in report_verdict(results)["failures"] if f["section"] == "curves"],
                              "curve-failures", "failing training checks")
    for key in images:
        if key.startswith("curves_"):
            blocks += _image(images, key, f"loss curves, {key.removeprefix('curves_')}")
    return Section("curves", "2. Training curves", blocks)


def _curve_status(check: dict) -> str:
    """``ok``, or FAIL with the smallest tolerance that would pass each failing per-step check."""
    if check["ok"]:
        return "ok"
    parts = []
    for kind in ("gradient", "update"):
        worst = check[f"step_{kind}"]
        if worst is not None and not worst["ok"]:
            if worst["error"] is None:
                parts.append(f"{kind}: no tolerance")
            elif kind == "update":
                parts.append(f"update passes at {math.ceil(worst['error'])} ulp")
            else:
                parts.append(f"gradient passes at {worst['error']:.3e}")
    if not check["free_running_ok"]:
        parts.append("free-running")
    return "FAIL" + (": " + "; ".join(parts) if parts else "")


def _step_worst(entry, ulps: bool = False) -> str:
    if entry is None:
        return "-"
    error = f"{entry['error']:.0f} ulp" if ulps else fmt_err(entry["error"])
    return f"{entry['quantity']} @{entry['step']}: {error}"


def _divergence(results: dict, images) -> Section:
    divergence = results["divergence"]
    spec = divergence["spec"]
    blocks = [f"Plain SGD (lr {spec['optimizer']['learning_rate']}), batch {spec['batch_size']}, "
              f"{divergence['steps']} steps on {divergence['data']}, each pair of backends from the same "
              "start. After each step: |Δloss| (that step's batch loss) and ‖Δθ‖/‖θ‖ (all parameters). "
              "Each step starts from the previous step's parameters, so rounding differences accumulate: "
              "in float64 they stay at the rounding floor (within a few units of 2^-53 ≈ 1.1e-16), in "
              "float32 they are about 10^8 times larger and grow past 2^-24 ≈ 6e-8 as training goes on."]
    rows = []
    for s in divergence["summary"]:
        loss, param = s["loss_abs_diff"], s["param_rel_diff"]
        rows.append([s["pair"], s["dtype"], fmt_err(param["first"]), fmt_err(param["last"]),
                     fmt_err(param["max"]), fmt_err(loss["first"]), fmt_err(loss["last"]),
                     fmt_err(loss["max"])])
    blocks.append(Table(["pair", "dtype", "‖Δθ‖/‖θ‖ step 1", "‖Δθ‖/‖θ‖ last", "‖Δθ‖/‖θ‖ max",
                         "|Δloss| step 1", "|Δloss| last", "|Δloss| max"], rows, id="divergence"))
    blocks += _image(images, "divergence", "divergence between backends per step, float32 vs float64")
    return Section("divergence", "2b. Divergence over training: float32 vs float64", blocks)


def _seeds(results: dict) -> Section:
    seeds = results["seeds"]
    blocks = []
    if not seeds["full_setting"]:
        blocks.append("REDUCED setting: rows marked REDUCED trained on a fixed subset of the training set "
                      "(the first n samples) and are NOT the seeds' setting, so their accuracies are not "
                      "comparable with the seeds' claims. Run `backprop-parity report --full` for those.")
    blocks.append("Test accuracy of each backend, from its own forward pass, after training from the "
                  "same initial parameters. Spread: max − min over the backends, in percentage points.")
    blocks.append(Table(
        ["experiment", "seed's claim", "scratch", "torch", "keras", "jax", "spread (pp)",
         "this run's setting", "seed's setting"],
        [[r["experiment"], fmt_pct(r["claim"]), fmt_pct(r["scratch"]), fmt_pct(r["torch"]),
          fmt_pct(r["keras"]), fmt_pct(r.get("jax")), fmt_pp(r["spread_pp"]), r["setting"], r["seed_setting"]]
         for r in seeds["rows"]],
        id="seeds"))
    blocks.append(Table(
        ["experiment", "backend", "steps", "train samples", "final batch loss", "train accuracy",
         "test accuracy", "training time (s)"],
        [[r["experiment"], r["backend"], str(r["steps"]), str(r["train_samples"]),
          "n/a" if r["final_loss"] is None else f"{r['final_loss']:.4f}", fmt_pct(r["train_accuracy"]),
          fmt_pct(r["test_accuracy"]), f"{r['train_wall_time_s']:.1f}"] for r in seeds["runs"]],
        caption="every run", id="seed-runs"))
    return Section("seeds", "3. The seeds' headline results in every backend", blocks)


def _variants(results: dict) -> Section:
    variants = results["variants"]
    blocks = ["The seeds' bugs, kept as named variants of the NumPy engine (`scratch.variants`, never "
              "the default), run through the parity suite: it must flag each and say where."]
    blocks.append(Table(["variant", "what it changes"], [[k, v] for k, v in variants["variants"].items()],
                        id="variant-list"))
    rows = [[r["variant"], r["check"], r["reference"], "yes" if r["detected"] else "NO", r["located"]]
            for r in variants["rows"]]
    blocks.append(Table(["variant", "check", "reference", "detected", "located"], rows, id="variants",
                        classes=_status_classes(rows, (3,))))
    for r in variants["rows"]:
        blocks.append(f"{r['variant']} vs {r['reference']}, {r['check']}:")
        blocks.append(Pre(r["message"]))
    return Section("variants", "4. Seed-faithful variants, caught by the parity check", blocks)


def _conventions(results: dict, images) -> Section:
    conventions = results["conventions"]
    blocks = [f"The NumPy engine with torch- and Keras-convention optimizers from the same start on "
              f"{conventions['data']}, {conventions['steps']} steps of batch "
              f"{conventions['spec']['batch_size']}. "
              "'same hyperparameters' isolates the update formula; 'framework defaults' is what each "
              "framework gives with no arguments."]
    blocks.append(Table(
        ["comparison", "step", "‖θ_torch − θ_keras‖/‖θ_keras‖", "|loss_torch − loss_keras|"],
        [[r["comparison"], str(a["step"]), fmt_err(a["param_rel_diff"]), fmt_err(a["loss_abs_diff"])]
         for r in conventions["rows"] for a in r["at_step"]], id="conventions-steps"))
    blocks.append(Table(
        ["comparison", "torch convention", "keras convention", "test acc. torch conv.",
         "test acc. keras conv.",
         "difference (pp)"],
        [[r["comparison"], r["torch_optimizer"], r["keras_optimizer"], fmt_pct(r["torch_test_accuracy"]),
          fmt_pct(r["keras_test_accuracy"]), fmt_pp(r["accuracy_diff_pp"])] for r in conventions["rows"]],
        id="conventions-accuracy"))
    blocks += _image(images, "conventions", "torch vs Keras convention, per step")
    return Section("conventions", "5. Convention differences: torch vs Keras optimizers", blocks)


def _environment(results: dict) -> Section:
    env = results["environment"]
    blocks = [f"{env['platform']} ({env['machine']}), {env['python_implementation']} at {env['executable']}"]
    blocks.append(Table(["package", "version"], [[k, v] for k, v in env["versions"].items()], id="versions"))
    blocks.append(Table(["setting", "threads"], [[k, str(v)] for k, v in env["threads"].items()],
                        caption="thread counts (TensorFlow: 0 = its default, the number of cores)",
                        id="threads"))
    if env["blas"]:
        keys = list(dict.fromkeys(k for pool in env["blas"] for k in pool))
        blocks.append(Table(keys, [[fmt_cell(pool.get(k)) for k in keys] for pool in env["blas"]],
                            caption="BLAS and OpenMP libraries loaded (threadpoolctl)", id="blas"))
    blocks.append(Table(["flag", "value"], [[k, v] for k, v in env["hygiene"].items()],
                        caption="numerical hygiene (twins.hygiene)", id="hygiene"))
    blocks.append(Table(["variable", "value"],
                        [[k, "(unset)" if v is None else v] for k, v in env["env"].items()],
                        caption="environment variables", id="env"))
    return Section("environment", "6. Environment", blocks)


def _bench(bench: dict, images) -> list:
    """The ``backprop-parity bench --json`` figures: per dtype, one row per optimizer × batch."""
    layers = "-".join(str(n) for n in bench["layers"])
    blocks = [f"One training step (forward, backward and optimizer update) of the {layers} MLP on the "
              "first m MNIST training samples, m the batch size, in every backend, as measured by "
              "`backprop-parity bench` (not during this report's run): each backend warmed up, then "
              "timed in interleaved rounds, so a busy machine slows all of them alike. ms: the median "
              "time per step; × scratch: that median over scratch's (> 1 is slower than scratch). "
              "GFLOP/s counts the matrix products only (forward, dW and dA); % of GEMM peak compares it "
              "with the best square matrix product measured in the same run. Timings are figures to "
              f"read, not pass/fail. Threads per library: {bench['threads']}."
              + (f" Before each timed block the bench slept {bench['settle_s']:g} s so the previous "
                 "backend's threads stopped spinning." if bench.get("settle_s") else "")]
    libraries = list(dict.fromkeys(lib for peaks in bench["peak_gflops"].values() for lib in peaks))
    blocks.append(Table(["dtype", *libraries],
                        [[dtype, *(fmt_rate(peaks[lib]) if lib in peaks else "" for lib in libraries)]
                         for dtype, peaks in bench["peak_gflops"].items()],
                        caption="GEMM peak (GFLOP/s of one square product, best of a few)", id="bench-peak"))
    for dtype in dict.fromkeys(row["dtype"] for row in bench["grid"]):
        rows = [row for row in bench["grid"] if row["dtype"] == dtype]
        backends = list(dict.fromkeys(name for row in rows for name in row["backends"]))
        backends.remove("scratch")                     # every row has it (schema); its ratio is 1
        columns = ["optimizer", "batch", "scratch ms"]
        for name in backends:
            columns += [f"{name} ms", f"{name} × scratch"]
        columns += ["scratch GFLOP/s", "scratch % of GEMM peak"]
        table_rows = []
        for row in rows:
            scratch = row["backends"]["scratch"]
            line = [row["optimizer"], str(row["batch"]), fmt_ms(scratch["median_s"])]
            for name in backends:
                timing = row["backends"].get(name)
                line += (["", ""] if timing is None
                         else [fmt_ms(timing["median_s"]), fmt_ratio(timing["ratio_to_scratch"])])
            line += [fmt_rate(scratch["gflops"]), fmt_rate(scratch["percent_of_peak"])]
            table_rows.append(line)
        blocks.append(Table(columns, table_rows, caption=f"benchmark, {dtype}: ms per step (median)",
                            id=f"bench-{dtype}"))
    blocks += _image(images, "bench", "ms per step of every backend per batch size, log scale")
    if "memory" in bench:
        blocks.append(Table(
            ["backend", "dtype", "optimizer", "RSS before (MiB)", "peak (MiB)", "step adds (MiB)"],
            [[m["kind"], m["dtype"], m["optimizer"], f"{m['rss_before_mib']:.0f}", f"{m['peak_mib']:.0f}",
              f"{m['step_extra_mib']:.0f}"] for m in bench["memory"]],
            caption="peak memory of full-batch steps, one fresh process per backend", id="bench-memory"))
    walls = [f"{what}: {bench[key]:.1f} s wall" for key, what in
             (("suite_wall_s", "default parity suite"), ("report_wall_s", "default report")) if key in bench]
    if walls:
        blocks.append("Measured with the benchmark: " + "; ".join(walls) + ".")
    blocks.append(Table(["library", "settings during the benchmark"],
                        [[k, v] for k, v in bench["frameworks"].items()], id="bench-frameworks"))
    if bench["blas"]:
        keys = list(dict.fromkeys(k for pool in bench["blas"] for k in pool))
        blocks.append(Table(keys, [[fmt_cell(pool.get(k)) for k in keys] for pool in bench["blas"]],
                            caption="BLAS and OpenMP libraries during the benchmark (threadpoolctl)",
                            id="bench-blas"))
    return blocks


def _explain(rows: list[dict]) -> Section:
    """Any list of flat rows, as one table (columns in order of first appearance)."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return Section("explain", "The backprop study (explain)",
                   [Table(columns, [[fmt_cell(row.get(c)) for c in columns] for row in rows], id="explain")])
