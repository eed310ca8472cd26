"""Section 5b, the convolutional model (``results["cnn"]``, ``reports.scenarios.cnn``), and the
CNN rows of the benchmark section (``results["bench_cnn"]``, ``bench --model lenet5``).

The parity table condenses the trace rows to the largest normwise error per quantity over the
layers (Z over Z_1..Z_L, dW over every layer with a kernel, …); every row is in results.json and
every failing one in the failures table. Numbers are formatted as in ``reports.render.document``.
"""

from __future__ import annotations

import re

from reports.render.document import (
    Section,
    Table,
    _curve_status,
    _failures_table,
    _image,
    _passes_at_row,
    _status_classes,
    _step_worst,
    fmt_err,
    fmt_ms,
    fmt_optimizer,
    fmt_ratio,
    fmt_tol,
)
from reports.verdict.report import section_verdict
from scratch.spec import ModelSpec

QUANTITIES = ("Z", "A", "loss", "dA", "dZ", "dW", "db")
TIES_SHOWN = 5        # max-pool tie rows in the table; the rest are counted (all are in results.json)

FINDINGS = {
    "padding": "`same` padding at stride 2. TensorFlow pads p = max((⌈H/s⌉ − 1)·s + k − H, 0) in all, "
    "⌊p/2⌋ before and the rest after, so an odd p puts the extra row and column at the bottom "
    'and right. torch\'s `padding="same"` exists only at stride 1, and the obvious port, '
    "`nn.Conv2d(padding=k // 2, stride=2)`, pads symmetrically: the output has the same shape, "
    "every window sits one pixel up and left. The measurement runs lenet5 with its first "
    "convolution at stride 2 both ways, from the same weights.",
    "flatten": "Flatten order. After a convolution torch flattens (C, H, W) (NCHW), Keras (H, W, C) (NHWC): "
    "the same numbers in another order, so the dense layer after Flatten must have its columns "
    "permuted when weights move between the two. Measured: lenet5 with a channels-last Flatten and "
    "the dense weights as they are, then with the columns permuted.",
    "batchnorm": "BatchNorm's running statistics r ← ρ·r + (1 − ρ)·(batch statistic). torch's `momentum=0.1` "
    "is ρ = 0.9, with ε = 1e-5, and it stores the unbiased variance n/(n − 1)·σ² (normalizing "
    "by the biased σ²); Keras's `momentum=0.99` is ρ = 0.99, with ε = 1e-3, and it stores the "
    "biased σ². Measured on lenet5 with a BatchNorm after each convolution (conv → BN → ReLU), "
    "trained with SGD from one start on the same batches: each of Keras's settings alone, and all "
    "three, against torch's convention (ε also changes training itself; ρ and the variance only "
    "the running statistics, hence inference); then each twin against the engine in its own "
    "framework's convention (the spec's `BatchNormSpec(decay, epsilon, running_variance)`).",
    "kernel layout": "Kernel layout. torch's conv kernels are OIHW (the weight file's), Keras's HWIO, the "
    "transpose (2, 3, 1, 0). Measured: lenet5's two kernels taken through HWIO and brought "
    "back by a reshape, by a transpose that swaps H and W, and by the correct inverse "
    "transpose (3, 2, 0, 1); and the Keras twin itself.",
}


def _largest(rows: list[dict]) -> dict:
    """quantity (Z, A, loss, dA, dZ, dW, db) → the row with the largest error (a failing one first)."""
    out = {}
    for row in rows:
        base = re.sub(r"\d+$", "", row["quantity"])
        error = row["rel_error"] if row["rel_error"] is not None else float("inf")
        current = out.get(base)
        if current is None or (not row["ok"], error) > (not current["ok"], current["rel_error"] or 0.0):
            out[base] = row
    return out


def parity_table(cnn: dict) -> Table:
    rows = []
    for dtype in dict.fromkeys(row["dtype"] for row in cnn["rows"]):
        for pair in dict.fromkeys(row["pair"] for row in cnn["rows"] if row["dtype"] == dtype):
            these = [row for row in cnn["rows"] if (row["dtype"], row["pair"]) == (dtype, pair)]
            worst = _largest(these)
            bounds = {row["kind"]: row["tolerance"] for row in these}
            failed = [
                f"{row['quantity']} (passes at {_passes_at_row(row)})" for row in these if not row["ok"]
            ]
            cells = [fmt_err(worst[q]["rel_error"]) if q in worst else "" for q in QUANTITIES]
            rows.append(
                [
                    dtype,
                    pair,
                    *cells,
                    " / ".join(fmt_tol(bounds[k]) for k in ("forward", "gradient") if k in bounds),
                    "ok" if not failed else "FAIL: " + ", ".join(failed),
                ]
            )
    return Table(
        ["dtype", "pair", *(f"{q} max rel" for q in QUANTITIES), "tolerance (forward / gradient)", "status"],
        rows,
        caption="lenet5: largest normwise error per quantity over the layers, each twin against the engine",
        id="cnn-parity",
        classes=_status_classes(rows, (-1,)),
    )


def training_table(cnn: dict) -> Table:
    rows = [
        [
            c["dtype"],
            c["pair"],
            c["config"],
            _step_worst(c["step_forward"]),
            _step_worst(c["step_gradient"]),
            _step_worst(c["step_update"], ulps=True),
            f"{fmt_err(c['curve_rel_error'])} / {fmt_err(c['parameters_rel_error'])}",
            c["free_running"],
            _curve_status(c),
        ]
        for c in cnn["checks"]
    ]
    return Table(
        [
            "dtype",
            "pair",
            "optimizer",
            "per-step forward (worst)",
            "per-step gradient (worst)",
            "per-step update (worst)",
            "free-running loss / parameters",
            "free-running",
            "status",
        ],
        rows,
        caption=f"lenet5 training, {cnn['steps']} steps: every step re-synchronized (the verdict), "
        "then free-running",
        id="cnn-training",
        classes=_status_classes(rows, (-1,)),
    )


def findings_blocks(findings: dict) -> list:
    blocks = [
        f"Convention findings, each measured in this run ({findings['dtype']}, inference mode, "
        f"{findings['data']}). Error: max|port − correct| / max|correct|; effect: bit-identical (error 0), "
        f"rounding (within the {findings['dtype']} forward bound "
        f"{fmt_tol(findings['rows'][0]['tolerance'])}) "
        "or moves (beyond it: the convention changes the result)."
        if findings["rows"]
        else "No convention findings were measured."
    ]
    for finding in dict.fromkeys(row["finding"] for row in findings["rows"]):
        these = [row for row in findings["rows"] if row["finding"] == finding]
        blocks.append(FINDINGS.get(finding, finding))
        rows = [
            [
                row["case"],
                row["quantity"],
                row["evidence"],
                fmt_err(row["rel_error"]),
                fmt_err(row["max_abs"]),
                row["effect"],
            ]
            for row in these
        ]
        blocks.append(
            Table(
                ["case", "quantity", "computed by", "rel error", "max abs error", "effect"],
                rows,
                caption=f"finding: {finding}",
                id=f"cnn-finding-{finding.replace(' ', '-')}",
            )
        )
    return blocks


def section(results: dict, images: dict[str, str]) -> Section:
    cnn = results["cnn"]
    spec = ModelSpec.from_dict(cnn["spec"])
    shapes = " → ".join("×".join(map(str, shape)) for shape in spec.layer_shapes)
    verdict = section_verdict(results, "cnn")
    keras_configs = sorted({c["config"] for c in cnn["checks"] if c["pair"].startswith("keras")})
    blocks = [
        f"Section verdict: {verdict['line']}.",
        f"The catalog's `{cnn['model']}` ({shapes}; {len(spec.numbered_layers)} numbered layers, dropout "
        f"{', '.join(str(layer.rate) for layer in spec.layers if layer.kind == 'dropout') or 'none'}; "
        f"{spec.init} init, seed {spec.seed}) on {cnn['data']}, every twin from the engine's initial "
        "parameters with the same dropout masks, float32 (the catalog's dtype) and float64. Parity: the "
        "project's one helper and tolerance table, as in section 1; each cell is the largest error of that "
        "quantity over the layers (every row is in results.json).",
        parity_table(cnn),
        f"Training: {fmt_optimizer(cnn['spec']['optimizer'])}, batch {cnn['spec']['batch_size']}. "
        + (
            "Keras's optimizers cannot express torch-convention Adam (ε added to √v̂ after the bias "
            "correction; Keras adds it to √v and folds the corrections into the step), so the Keras twin "
            f"trains {', '.join(keras_configs)} — the same η, β₁, β₂, ε in Keras's convention — against the "
            "engine running that same convention; torch and JAX train the catalog's own. Judged as in "
            "section 2."
            if keras_configs and cnn["spec"]["optimizer"]["convention"] != "keras"
            else "Judged as in section 2."
        ),
        training_table(cnn),
    ]
    blocks += tie_blocks(cnn["checks"])
    blocks += _failures_table(verdict["failures"], "cnn-failures", "failing lenet5 comparisons")
    curves = cnn["curves"]
    checks = {c["pair"]: c for c in cnn["checks"] if c["dtype"] == curves["dtype"]}
    blocks.append(
        f"Loss per step, {curves['dtype']}, every backend free-running from the same start on the same "
        "batches and masks (the Keras twin and its engine run in Keras's Adam convention, so their "
        "curves differ from the others' by the convention, not by an error). Deviation: each twin "
        "against the engine in its own convention."
    )
    blocks.append(
        Table(
            [
                "backend",
                "Adam convention",
                "max |loss − engine loss|",
                "at step",
                "parameters after the run (rel)",
            ],
            [
                [
                    d["backend"],
                    d["convention"],
                    fmt_err(d["max_abs_loss_diff"]),
                    "-" if d["max_abs_loss_diff"] == 0 else str(d["at_step"]),
                    fmt_err(checks.get(f"{d['backend']} vs scratch", {}).get("parameters_rel_error")),
                ]
                for d in curves["deviations"]
            ],
            caption=f"lenet5 curves: deviation from the engine ({curves['dtype']})",
            id="cnn-deviation",
        )
    )
    blocks += _image(
        images,
        "cnn_curves",
        "lenet5 loss per step in every backend, and each twin's deviation from the engine",
    )
    blocks += findings_blocks(cnn["findings"])
    return Section("cnn", f"5b. The convolutional model: {cnn['model']}", blocks)


def tie_blocks(checks: list[dict]) -> list:
    """The max-pool ties that rounding broke the other way in a training check: one sentence and a
    table of the first :data:`TIES_SHOWN` (pair, step, layer, first flipped window, the two values
    in the engine and in the twin, each pair's gap in ulps), the rest counted — every one is in
    results.json (``cnn.checks[].ties``). A check's notes that no tie entry covers (a results file
    written before ``ties`` existed, or a note of another kind) follow as text."""
    rows, pairs = [], set()
    for c in checks:
        for tie in c.get("ties", []):
            pairs.add((c["dtype"], c["pair"]))
            rows.append([c["dtype"], c["pair"], "-" if tie["step"] is None else str(tie["step"]),
                         str(tie["layer"]), ", ".join(map(str, tie["window"])) + _more(tie["windows"]),
                         _values(tie["reference"], c["dtype"]), _values(tie["actual"], c["dtype"]),
                         " / ".join(f"{g:.3g}" for g in tie["gap_ulp"])])
    notes = [f"{c['dtype']} {c['pair']}, {note}" for c in checks if not c.get("ties")
             for note in c.get("notes", [])]
    blocks = []
    if rows:
        shown = rows[:TIES_SHOWN]
        more = len(rows) - len(shown)
        blocks.append(
            f"Max-pool ties that rounding broke the other way: {len(rows)} (step, layer) "
            f"case{'s' * (len(rows) != 1)} in {len(pairs)} training check{'s' * (len(pairs) != 1)}. "
            "Two elements of a window are equal, or within the forward bound, in one backend and ordered "
            "the other way in the other, so each routes the gradient to its own first maximum; the "
            "gradients below the pool were compared with the engine's backward routed as the twin's "
            "(see the README)."
            + (f" The first {len(shown)} are shown, and {more} more are in results.json (cnn.checks[].ties)."
               if more else ""))
        blocks.append(Table(["dtype", "pair", "step", "layer", "window (n, c, y, x)", "engine's values",
                             "twin's values", "gap (ulp): engine / twin"], shown,
                            caption="max-pool ties routed differently (values: the engine's first "
                                    "maximum, then the twin's)", id="cnn-ties"))
    if notes:
        blocks.append("Max-pool ties that rounding broke the other way (the gradients below the pool were "
                      "compared with the engine's backward routed as the twin's, see the README): "
                      + "; ".join(notes) + ".")
    return blocks


def _values(values: list[float], dtype: str) -> str:
    """Each value as the shortest decimal that reads back as the same number of ``dtype``."""
    import numpy as np

    return ", ".join(str(np.dtype(dtype).type(v)) for v in values)


def _more(windows: int) -> str:
    return f" (+{windows - 1} more)" if windows > 1 else ""


def bench_blocks(bench: dict, images: dict[str, str]) -> list:
    """The ``bench --model lenet5`` figures: ms per step per backend and batch, and where the
    engine's step goes."""
    blocks = [
        f"The convolutional model: one training step of {bench['model']} without its dropout layers "
        f"({bench['cnn'][0]['dtype']}, {bench['cnn'][0]['optimizer']}), as measured by `backprop-parity "
        f"bench --model {bench['model']}` (not during this report's run), {bench['threads']} thread(s) per "
        "library; backends timed in interleaved rounds. × fastest: the median over the fastest backend's."
    ]
    kinds = list(dict.fromkeys(name for row in bench["cnn"] for name in row["backends"]))
    columns = ["batch"]
    for name in kinds:
        columns += [f"{name} ms", f"{name} × fastest"]
    rows = []
    for row in bench["cnn"]:
        line = [str(row["batch"])]
        for name in kinds:
            timing = row["backends"].get(name)
            line += (
                ["", ""]
                if timing is None
                else [fmt_ms(timing["median_s"]), fmt_ratio(timing["ratio_to_fastest"])]
            )
        rows.append(line)
    blocks.append(
        Table(columns, rows, caption=f"benchmark, {bench['model']}: ms per step (median)", id="bench-cnn")
    )
    parts = list(dict.fromkeys(part for row in bench["cnn"] for part in row["engine_profile_s"]))
    profile_columns = ["engine part"] + [f"batch {row['batch']} ms (% of step)" for row in bench["cnn"]]
    profile_rows = []
    for part in parts:
        line = [part]
        for row in bench["cnn"]:
            profile = row["engine_profile_s"]
            line.append(
                ""
                if part not in profile
                else f"{fmt_ms(profile[part])} ({100 * profile[part] / profile['step']:.1f} %)"
            )
        profile_rows.append(line)
    blocks.append(
        Table(
            profile_columns,
            profile_rows,
            caption=f"where the engine's {bench['model']} step goes",
            id="bench-cnn-profile",
        )
    )
    blocks += _image(images, "bench_cnn", f"{bench['model']}: ms per step of every backend per batch size")
    return blocks
