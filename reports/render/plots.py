"""The report's plots: PNG bytes from the results dict (matplotlib, Agg canvas, no pyplot state).

File names are fixed by what the results contain (:func:`plot_names`), so rendering the same
results twice gives the same files:

=========================== ================================================================
``parity_errors-<model>.png`` max rel error per quantity and backend pair, per dtype
``curves-<model>-<opt>.png``  the loss of every step, every backend and convention overlaid
``divergence-<model>.png``  |Δloss| and ‖Δθ‖/‖θ‖ per step between backends, log scale
``conventions.png``         ‖Δθ‖/‖θ‖ and |Δloss| per step, torch- vs Keras-convention optimizers
``bench-<model>.png``       (``report --bench``) ms per step of each benchmarked model, every backend
                            grouped per batch size, one panel per dtype × optimizer, log scale, IQR
                            whiskers
=========================== ================================================================

Log-scale plots cannot show an exact 0 (two backends agreeing to the last bit); such points are
drawn at :data:`FLOOR` and the axis says so.
"""

from __future__ import annotations

import io
import itertools

import numpy as np

from reports.render.bench import bench_models

FLOOR = 1e-18
UNIT_ROUNDOFF = {"float64": 2.0 ** -53, "float32": 2.0 ** -24}
BACKEND_STYLE = {"scratch": dict(linestyle="-", linewidth=3.0, alpha=0.45),
                 "torch": dict(linestyle="--", linewidth=1.4),
                 "keras": dict(linestyle=":", linewidth=1.8),
                 "jax": dict(linestyle="-.", linewidth=1.2)}
DTYPE_COLOR = {"float64": "tab:blue", "float32": "tab:orange"}
PAIR_STYLE = {"torch vs scratch": "-", "keras vs scratch": "--", "keras vs torch": ":"}
PAIR_MARKER = {"torch vs scratch": "o", "keras vs scratch": "x", "keras vs torch": "+"}


def plot_names(results: dict) -> dict[str, str]:
    """plot key → file name, for every plot the results have data for (in report order); the
    model scenarios' plots are per model (``parity_errors-<model>.png``, …)."""
    names = {}
    for entry in results["parity"]:
        if entry["rows"]:
            names[f"parity_errors-{entry['model']}"] = f"parity_errors-{entry['model']}.png"
    for entry in results["curves"]:
        for optimizer in dict.fromkeys(run["optimizer"] for run in entry["runs"]):
            key = f"curves-{entry['model']}-{optimizer}"
            names[key] = f"{key}.png"
    for entry in results["divergence"]:
        if entry["series"]:
            names[f"divergence-{entry['model']}"] = f"divergence-{entry['model']}.png"
    if results["conventions"]["series"]:
        names["conventions"] = "conventions.png"
    for model in bench_models(results):
        names[f"bench-{model}"] = f"bench-{model}.png"
    return names


def render_plots(results: dict) -> dict[str, bytes]:
    """file name → PNG bytes for every plot of :func:`plot_names`."""
    entries = {(scenario, entry["model"]): entry for scenario in ("parity", "curves", "divergence")
               for entry in results[scenario]}
    out = {}
    for key, filename in plot_names(results).items():
        if key.startswith("curves-"):
            for (scenario, model), entry in entries.items():
                if scenario == "curves" and key.startswith(f"curves-{model}-"):
                    figure = _curves(entry, key.removeprefix(f"curves-{model}-"))
        elif key.startswith("parity_errors-"):
            figure = _parity(entries[("parity", key.removeprefix("parity_errors-"))])
        elif key.startswith("divergence-"):
            figure = _divergence(entries[("divergence", key.removeprefix("divergence-"))])
        elif key.startswith("bench-"):
            figure = _bench(bench_models(results)[key.removeprefix("bench-")])
        else:
            draw, section = _PLOTTERS[key]
            figure = draw(results[section])
        out[filename] = _png(figure)
    return out


def _figure(width: float, height: float, columns: int = 1, rows: int = 1):
    """A figure and its ``rows`` × ``columns`` axes, row by row."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = [figure.add_subplot(rows, columns, i + 1) for i in range(rows * columns)]
    return figure, axes


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _numbers(values) -> np.ndarray:
    """A JSON list of numbers as float64, null (a non-finite value in results.json) as NaN."""
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _floored(values) -> np.ndarray:
    """Series values for a log axis: None (non-finite) → NaN (a gap), 0 → FLOOR."""
    array = _numbers(values)
    return np.where(array > FLOOR, array, np.where(np.isnan(array), np.nan, FLOOR))


def _parity(parity: dict):
    dtypes = list(dict.fromkeys(row["dtype"] for row in parity["rows"]))
    figure, axes = _figure(12, 4.5, columns=len(dtypes))
    for ax, dtype in zip(axes, dtypes, strict=True):
        rows = [row for row in parity["rows"] if row["dtype"] == dtype]
        quantities = list(dict.fromkeys(row["quantity"] for row in rows))
        pairs = list(dict.fromkeys(row["pair"] for row in rows))
        width = 0.8 / max(len(pairs), 1)
        for index, pair in enumerate(pairs):
            errors = {row["quantity"]: row["rel_error"] for row in rows if row["pair"] == pair}
            heights = _floored([errors.get(q) for q in quantities])
            ax.bar(np.arange(len(quantities)) + (index - (len(pairs) - 1) / 2) * width, heights, width,
                   label=pair)
        for kind, style in (("forward", "-"), ("gradient", "--")):
            bounds = {row["tolerance"] for row in rows if row["kind"] == kind}
            for bound in bounds:
                ax.axhline(bound, color="tab:red", linestyle=style, linewidth=1,
                           label=f"tolerance ({kind}) {bound:.0e}")
        ax.set_yscale("log")
        ax.set_xticks(np.arange(len(quantities)), quantities, rotation=90, fontsize=8)
        ax.set_title(f"{parity['model']}, {dtype}: max rel error per quantity")
        ax.set_ylabel(f"max|a − d| / max|d|  (0 drawn at {FLOOR:.0e})")
        ax.legend(fontsize=7)
    return figure


def _curves(curves: dict, optimizer: str):
    """One model's loss per step with ``optimizer``, every backend and convention overlaid, in
    the first dtype it trained in (the model's own unless the profile names others)."""
    figure, (ax,) = _figure(8, 4.5)
    dtype = curves["runs"][0]["dtype"] if curves["runs"] else None
    for run in curves["runs"]:
        if run["optimizer"] != optimizer or run["dtype"] != dtype:
            continue
        label = f"{run['backend']} ({run['convention']} convention)" if optimizer != "sgd" else run["backend"]
        color = {"torch": "tab:blue", "keras": "tab:green", "optax": "tab:olive"}[run["convention"]]
        if optimizer == "sgd":
            color = {"scratch": "tab:gray", "torch": "tab:red", "keras": "tab:purple",
                     "jax": "tab:orange"}[run["backend"]]
        steps = np.arange(1, len(run["loss"]) + 1)
        loss = _numbers(run["loss"])
        ax.plot(steps, loss, color=color, label=label, **BACKEND_STYLE.get(run["backend"], {}))
    ax.set_xlabel("step")
    ax.set_ylabel("batch loss (before the step's update)")
    ax.set_title(f"{curves['model']}, {optimizer}, {dtype}: loss per step, every backend overlaid "
                 f"({curves['data']})", fontsize=9)
    ax.legend(fontsize=8)
    return figure


def _divergence(divergence: dict):
    figure, axes = _figure(12, 4.5, columns=2)
    for ax, key, title in zip(axes, ("loss_abs_diff", "param_rel_diff"),
                              ("|Δloss| per step", "‖Δθ‖ / ‖θ‖ after each step"), strict=True):
        for series in divergence["series"]:
            values = _floored(series[key])
            # per-step loss differences jump between 0 and a few ulps: points, not a line
            style = (dict(linestyle="none", marker=PAIR_MARKER.get(series["pair"], "."), markersize=3)
                     if key == "loss_abs_diff" else
                     dict(linestyle=PAIR_STYLE.get(series["pair"], "-"), linewidth=1.2))
            ax.plot(np.arange(1, len(values) + 1), values, color=DTYPE_COLOR.get(series["dtype"]),
                    label=f"{series['pair']}, {series['dtype']}", **style)
        for dtype, roundoff in UNIT_ROUNDOFF.items():
            ax.axhline(roundoff, color=DTYPE_COLOR[dtype], linewidth=0.8, alpha=0.5)
            ax.annotate(f"{dtype} unit roundoff", (1, roundoff), fontsize=7, color=DTYPE_COLOR[dtype],
                        va="bottom")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(f"{divergence['model']}: {title}  (0 drawn at {FLOOR:.0e})", fontsize=10)
        ax.legend(fontsize=7)
    return figure


def _conventions(conventions: dict):
    figure, axes = _figure(12, 4.5, columns=2)
    for ax, key, title in zip(axes, ("param_rel_diff", "loss_abs_diff"),
                              ("‖θ_torch − θ_keras‖ / ‖θ_keras‖", "|loss_torch − loss_keras|"), strict=True):
        for series in conventions["series"]:
            values = _floored(series[key])
            ax.plot(np.arange(1, len(values) + 1), values, linewidth=1.2, label=series["comparison"])
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(f"torch vs Keras convention: {title}  (0 drawn at {FLOOR:.0e})", fontsize=10)
        ax.legend(fontsize=7)
    return figure


def _bench(rows: list[dict]):
    """One model's bench rows: a panel per dtype × optimizer that it was timed at."""
    dtypes = list(dict.fromkeys(row["dtype"] for row in rows))
    optimizers = list(dict.fromkeys(row["optimizer"] for row in rows))
    every_backend = list(dict.fromkeys(name for row in rows for name in row["backends"]))
    model = rows[0]["model"]
    figure, axes = _figure(max(7.0, 5.5 * len(optimizers)), 4.0 * len(dtypes), columns=len(optimizers),
                           rows=len(dtypes))
    for ax, (dtype, optimizer) in zip(axes, itertools.product(dtypes, optimizers), strict=True):
        panel = [row for row in rows if (row["dtype"], row["optimizer"]) == (dtype, optimizer)]
        if not panel:
            ax.set_visible(False)
            continue
        _timing_bars(ax, panel, every_backend, f"{model}, {dtype}, {optimizer}: one step per backend")
    return figure


def _timing_bars(ax, rows: list[dict], every_backend: list[str], title: str) -> None:
    """One group of bars per row (a batch size), one bar per backend: median ms per step with
    IQR whiskers, log scale; a backend keeps its colour (its place in ``every_backend``)."""
    backends = list(dict.fromkeys(name for row in rows for name in row["backends"]))
    width = 0.8 / len(backends)
    for index, name in enumerate(backends):
        where = [i for i, row in enumerate(rows) if name in row["backends"]]
        timings = [rows[i]["backends"][name] for i in where]
        median = np.array([1e3 * t["median_s"] for t in timings])
        spread = np.array([[median[j] - 1e3 * t["q1_s"], 1e3 * t["q3_s"] - median[j]]
                           for j, t in enumerate(timings)]).T
        ax.bar(np.array(where) + (index - (len(backends) - 1) / 2) * width, median, width,
               yerr=np.clip(spread, 0, None), capsize=2, label=name, color=f"C{every_backend.index(name)}")
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(rows)), [str(row["batch"]) for row in rows])
    ax.set_xlabel("batch size")
    ax.set_ylabel("ms per step (median; whiskers: IQR)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)


# plot key → (drawing function, results section it reads)
_PLOTTERS = {"conventions": (_conventions, "conventions")}
