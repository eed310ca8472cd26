"""The CNN rows of the benchmark section (``results["bench_cnn"]``, a ``bench --model lenet5
--json`` file read by ``report --bench``)."""

from __future__ import annotations

from reports.render.blocks import Table, fmt_ms, fmt_ratio, image


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
    blocks += image(images, "bench_cnn", f"{bench['model']}: ms per step of every backend per batch size")
    return blocks
