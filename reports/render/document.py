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
  scratch and to the fastest backend with 2, GFLOP/s and % of the GEMM peak with 1,
  memory in whole MiB, wall times in s with 1.
"""

from __future__ import annotations

from reports.render import findings as render_findings
from reports.render import heatmap
from reports.render.bench import bench_blocks
from reports.render.blocks import (
    Image,
    Pre,
    Section,
    Table,
    curve_status,
    describe_model,
    failures_table,
    fmt_cell,
    fmt_err,
    fmt_optimizer,
    fmt_pct,
    fmt_pp,
    fmt_tol,
    image,
    passes_at_row,
    status_class,
    status_classes,
    step_worst,
)
from reports.render.ties import tie_blocks
from reports.study.sections import study_sections
from reports.verdict.report import model_verdict, report_verdict

__all__ = ["Image", "Pre", "Section", "Table", "fmt_err", "fmt_pct", "fmt_pp", "fmt_tol", "sections",
           "status_class", "verdict_line"]


def sections(results: dict, images: dict[str, str]) -> list[Section]:
    """Every section of the report, in order; ``images``: plot key → file name. The model
    scenarios give one section per model they ran (parity, curves, divergence, each with the
    model's name)."""
    out = [_overview(results)]
    out += [_parity(results, entry, images) for entry in results["parity"]]
    out += [_curves(results, entry, images) for entry in results["curves"]]
    out += [_divergence(entry, images) for entry in results["divergence"]]
    out += [_seeds(results), _variants(results), _conventions(results, images)]
    out += [render_findings.section(entry) for entry in results.get("findings", [])]
    out.append(_environment(results))
    if results.get("bench"):
        blocks = bench_blocks(results, images)
        out.append(Section("bench", "7. Benchmark: one training step per backend", blocks))
    out += [section for entry in results.get("explain", []) for section in study_sections(entry)]
    return out


def verdict_line(results: dict) -> str:
    """The report's first line (``reports.verdict.report``), recomputed from the rows."""
    return report_verdict(results)["line"]


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


def _parity(results: dict, parity: dict, images) -> Section:
    model = parity["model"]
    spec = next(iter(parity["specs"].values()), None)
    blocks = [f"Model verdict: {model_verdict(results, model)['line']}."]
    if spec is not None:
        blocks.append(f"`{model}` ({describe_model(spec)}; {spec['init']} init, seed {spec['seed']}).")
    blocks += [f"One batch ({parity['data']}) through every backend from the same parameters (and the "
              "same dropout masks, where the model drops); each "
              "quantity compared per backend pair (actual vs desired, the desired one being the "
              "reference): max abs error max|a − d| and max rel error max|a − d| / max|d|, against "
              "the tolerance table."]
    for dtype in dict.fromkeys(row["dtype"] for row in parity["rows"]):
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
            failed = [f"{c['pair']} (passes at {passes_at_row(c)})" for c in present if not c["ok"]]
            judged = " *" if any(c.get("note") for c in present) else ""
            line += [fmt_tol(present[0]["tolerance"]), ("ok" if not failed else "FAIL: " + ", ".join(failed))
                     + judged]
            table_rows.append(line)
        blocks.append(Table(columns, table_rows, caption=f"{model}, {dtype}", id=f"parity-{model}-{dtype}",
                            classes=status_classes(table_rows, (-1,))))
        notes = dict.fromkeys(f"{row['pair']}: {row['note']}" for row in rows if row.get("note"))
        blocks += [f"* ({dtype}) {note}" for note in notes]      # each once, for the rows marked *
    failures = model_verdict(results, model)["failures"]
    blocks += failures_table([f for f in failures if f["section"] == "parity"],
                             f"parity-failures-{model}", f"failing parity comparisons, {model}")
    blocks += _heat_maps(parity["rows"], model)
    blocks += image(images, f"parity_errors-{model}",
                    f"{model}: max relative error per quantity and backend pair")
    return Section(f"parity-{model}", f"1. Forward and gradient parity: {model}", blocks)


def _heat_maps(rows: list[dict], model: str) -> list:
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
                    caption="colour scale (ε units)", id=f"heat-legend-{model}",
                    classes=[heatmap.LEGEND_CLASSES], css="heat")]
    for dtype in dict.fromkeys(row["dtype"] for row in rows):
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
                                caption=f"{model}, {dtype}, {pair}: error in ε (bounds: "
                                        f"{heatmap.bounds_text(these, dtype)})",
                                id=f"heat-{model}-{dtype}-{pair.replace(' ', '-')}", classes=classes,
                                css="heat"))
    return blocks


def _curves(results: dict, curves: dict, images) -> Section:
    model = curves["model"]
    spec = curves["spec"]
    dtypes = list(dict.fromkeys(c["dtype"] for c in curves["checks"])) or [spec["dtype"]]
    blocks = [f"`{model}` ({describe_model(spec)}), {spec['init']} init, {', '.join(dtypes)}, batch "
              f"{spec['batch_size']}, {curves['steps']} steps on {curves['data']}; every backend runs the "
              "same plan (batches and dropout masks in the same order) from the same parameters. A "
              "framework runs only the conventions its optimizers express (Keras's cannot express "
              "torch-convention Adam, torch's Keras's; JAX's optax: torch's, Keras's but its Adam, and "
              "optax's own); plain SGD is the same update in all, so every backend runs it."]
    blocks.append(Table(["optimizer", "hyperparameters"],
                        [[config, fmt_optimizer(opt)] for config, opt in curves["optimizers"].items()],
                        id=f"curve-optimizers-{model}"))
    blocks.append("The verdict is per step: before every step the framework is re-synchronized to the "
                  "NumPy engine's parameters and optimizer state, its gradients are held to the gradient "
                  "bound and its update, fed its own gradients, must match the engine's update of the same "
                  "gradients elementwise within a few ulps. The free-running curves are measured: the "
                  "first step where they part is named with its cause (a ReLU kink flipped by rounding, "
                  "an adaptive step amplifying a near-zero gradient), or a higher-precision run of the "
                  "engine arbitrates.")
    rows = [[c["config"], c["dtype"], c["pair"], step_worst(c["step_gradient"]),
             step_worst(c["step_update"], ulps=True),
             f"{fmt_err(c['curve_rel_error'])} / {fmt_err(c['parameters_rel_error'])}", c["free_running"],
             curve_status(c)] for c in curves["checks"]]
    blocks.append(Table(
        ["optimizer", "dtype", "pair", "per-step gradient (worst)", "per-step update (worst)",
         "free-running loss / parameters", "free-running", "status"],
        rows, id=f"curve-checks-{model}", classes=status_classes(rows, (-1,))))
    blocks += tie_blocks(curves["checks"], f"-{model}")
    failures = model_verdict(results, model)["failures"]
    blocks += failures_table([f for f in failures if f["section"] == "curves"],
                             f"curve-failures-{model}", f"failing training checks, {model}")
    prefix = f"curves-{model}-"
    for key in images:
        if key.startswith(prefix):
            blocks += image(images, key, f"{model}: loss curves, {key.removeprefix(prefix)}")
    return Section(f"curves-{model}", f"2. Training curves: {model}", blocks)


def _divergence(divergence: dict, images) -> Section:
    model = divergence["model"]
    spec = divergence["spec"]
    blocks = [f"`{model}` ({describe_model(spec)}), plain SGD (lr {spec['optimizer']['learning_rate']}), "
              f"batch {spec['batch_size']}, "
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
                         "|Δloss| step 1", "|Δloss| last", "|Δloss| max"], rows, id=f"divergence-{model}"))
    blocks += image(images, f"divergence-{model}",
                    f"{model}: divergence between backends per step, float32 vs float64")
    return Section(f"divergence-{model}", f"2b. Divergence over training, float32 vs float64: {model}",
                   blocks)


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
                        classes=status_classes(rows, (3,))))
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
    blocks += image(images, "conventions", "torch vs Keras convention, per step")
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
