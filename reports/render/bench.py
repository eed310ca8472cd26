"""The benchmark section (section 7, only with ``report --bench``): every bench file of
``results["bench"]`` (``reports.schema.BENCH``) rendered alike, whatever the model.

Per file: its GEMM peak; per model and dtype, one table row per timed configuration (optimizer ×
batch: every backend's median ms and its ratio to scratch's, the fastest backend and scratch's
ratio to it, scratch's GFLOP/s and % of the GEMM peak); per model its plot and, where the file has
it, the engine's step part by part (``profile``); the peak memory per backend where measured; the
suite and report wall times; the frameworks' and BLAS settings during the run.
"""

from __future__ import annotations

from reports.render.blocks import Table, describe_model, fmt_cell, fmt_ms, fmt_rate, fmt_ratio, image

INTRO = ("One training step (forward, backward and optimizer update) of each model on the first m "
         "MNIST training samples (N(0, 1) rows with random labels for a model that does not fit "
         "MNIST), m the batch size, in every backend that can run it, as measured by `backprop-parity "
         "bench` (not during this report's run): each backend warmed up, then timed in interleaved "
         "rounds, so a busy machine slows all of them alike. ms: the median time per step; × scratch: "
         "that median over scratch's (> 1 is slower than scratch); × fastest: over the fastest "
         "backend's. GFLOP/s counts the products of the kernel layers only (forward, dW and dA); % of "
         "GEMM peak compares it with the best square matrix product measured in the same run. Timings "
         "are figures to read, not pass/fail.")


def bench_models(results: dict) -> dict[str, list[dict]]:
    """model → its rows over every bench file of ``results["bench"]`` (one file per model: schema)."""
    out: dict[str, list[dict]] = {}
    for bench in results.get("bench", []):
        for row in bench["rows"]:
            out.setdefault(row["model"], []).append(row)
    return out


def bench_blocks(results: dict, images: dict[str, str]) -> list:
    """The section's blocks: :data:`INTRO`, then each bench file's (:func:`file_blocks`)."""
    blocks: list = [INTRO]
    for bench in results["bench"]:
        blocks += file_blocks(bench, images)
    return blocks


def file_blocks(bench: dict, images: dict[str, str]) -> list:
    """One bench file's figures (see the module docstring); its tables' ids carry its models."""
    tag = "-".join(bench["specs"])
    blocks: list = [
        "; ".join(f"`{model}` ({describe_model(spec)})" for model, spec in bench["specs"].items())
        + f": {bench['threads']} thread(s) per library"
        + (f"; before each timed block the bench slept {bench['settle_s']:g} s so the previous "
           "backend's threads stopped spinning." if bench["settle_s"] else ".")]
    libraries = list(dict.fromkeys(lib for peaks in bench["peak_gflops"].values() for lib in peaks))
    blocks.append(Table(["dtype", *libraries],
                        [[dtype, *(fmt_rate(peaks[lib]) if lib in peaks else "" for lib in libraries)]
                         for dtype, peaks in bench["peak_gflops"].items()],
                        caption="GEMM peak (GFLOP/s of one square product, best of a few)",
                        id=f"bench-peak-{tag}"))
    for model in bench["specs"]:
        rows = [row for row in bench["rows"] if row["model"] == model]
        for dtype in dict.fromkeys(row["dtype"] for row in rows):
            blocks.append(timing_table(model, [row for row in rows if row["dtype"] == dtype]))
        blocks += image(images, f"bench-{model}", f"{model}: ms per step of every backend per batch size, "
                                                  "log scale")
        profiled = [row for row in rows if "profile" in row]
        if profiled:
            blocks.append(profile_table(model, profiled))
    memory = [(row, kind, figures) for row in bench["rows"]
              for kind, figures in row.get("memory", {}).items()]
    if memory:
        blocks.append(Table(
            ["model", "backend", "dtype", "optimizer", "batch", "RSS before (MiB)", "peak (MiB)",
             "step adds (MiB)"],
            [[row["model"], kind, row["dtype"], row["optimizer"], str(row["batch"]),
              f"{m['rss_before_mib']:.0f}", f"{m['peak_mib']:.0f}", f"{m['step_extra_mib']:.0f}"]
             for row, kind, m in memory],
            caption="peak memory of a step, one fresh process per backend", id=f"bench-memory-{tag}"))
    walls = [f"{what}: {bench[key]:.1f} s wall" for key, what in
             (("suite_wall_s", "default parity suite"), ("report_wall_s", "default report")) if key in bench]
    if walls:
        blocks.append("Measured with the benchmark: " + "; ".join(walls) + ".")
    blocks.append(Table(["library", "settings during the benchmark"],
                        [[k, v] for k, v in bench["frameworks"].items()], id=f"bench-frameworks-{tag}"))
    if bench["blas"]:
        keys = list(dict.fromkeys(k for pool in bench["blas"] for k in pool))
        blocks.append(Table(keys, [[fmt_cell(pool.get(k)) for k in keys] for pool in bench["blas"]],
                            caption="BLAS and OpenMP libraries during the benchmark (threadpoolctl)",
                            id=f"bench-blas-{tag}"))
    return blocks


def timing_table(model: str, rows: list[dict]) -> Table:
    """One model's rows of one dtype: a line per optimizer × batch."""
    dtype = rows[0]["dtype"]
    backends = list(dict.fromkeys(name for row in rows for name in row["backends"]))
    backends.remove("scratch")                         # every row has it (schema); its ratio is 1
    columns = ["optimizer", "batch", "scratch ms"]
    for name in backends:
        columns += [f"{name} ms", f"{name} × scratch"]
    columns += ["fastest", "scratch × fastest", "scratch GFLOP/s", "scratch % of GEMM peak"]
    lines = []
    for row in rows:
        scratch = row["backends"]["scratch"]
        line = [row["optimizer"], str(row["batch"]), fmt_ms(scratch["median_s"])]
        for name in backends:
            timing = row["backends"].get(name)
            line += (["", ""] if timing is None
                     else [fmt_ms(timing["median_s"]), fmt_ratio(timing["ratio_to_scratch"])])
        fastest = min(row["backends"], key=lambda name: row["backends"][name]["median_s"])
        line += [fastest, fmt_ratio(scratch["ratio_to_fastest"]), fmt_rate(scratch["gflops"]),
                 fmt_rate(scratch["percent_of_peak"])]
        lines.append(line)
    return Table(columns, lines, caption=f"benchmark, {model}, {dtype}: ms per step (median)",
                 id=f"bench-{model}-{dtype}")


def profile_table(model: str, rows: list[dict]) -> Table:
    """Where the engine's step goes, a column per profiled row: each part's median ms and its share
    of the step's."""
    varied = len({(row["dtype"], row["optimizer"]) for row in rows}) > 1
    columns = ["engine part"] + [f"batch {row['batch']}" + (f", {row['dtype']}, {row['optimizer']}" if varied
                                                             else "") + " ms (% of step)" for row in rows]
    parts = list(dict.fromkeys(part for row in rows for part in row["profile"]["engine_profile_s"]))
    lines = []
    for part in parts:
        line = [part]
        for row in rows:
            profile = row["profile"]["engine_profile_s"]
            line.append("" if part not in profile
                        else f"{fmt_ms(profile[part])} ({100 * profile[part] / profile['step']:.1f} %)")
        lines.append(line)
    return Table(columns, lines, caption=f"where the engine's {model} step goes", id=f"bench-profile-{model}")
