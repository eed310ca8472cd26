"""The convention findings measured on a convolutional model (``results["findings"]``,
``reports.scenarios.cnn_findings``): what each convention is, and a table of its measured effect
per case."""

from __future__ import annotations

from reports.render.blocks import Section, Table, fmt_err, fmt_tol

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


def findings_blocks(findings: dict) -> list:
    """A paragraph and a table per finding."""
    blocks = [
        f"Convention findings on `{findings['model']}`, each measured in this run ({findings['dtype']}, "
        "inference mode, "
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
                id=f"{findings['model']}-finding-{finding.replace(' ', '-')}",
            )
        )
    return blocks




def section(findings: dict) -> Section:
    return Section(f"findings-{findings['model']}",
                   f"5b. Convolutional conventions, measured on {findings['model']}",
                   findings_blocks(findings))
