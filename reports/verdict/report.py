"""The report's verdict: one line that opens the report, worded like ``backprop-parity check``'s
headline (``reports.verdict.check``), computed from the results dict alone.

The judged comparisons, over every model the report ran (each parity and curves entry of
results.json is one catalog model's), are

* every row of the parity tables (dtype × backend pair × quantity): normwise relative error
  e = max|a − d| / max(max|d|, floor) against its bound;
* per training-curve check (optimizer × backend pair), as ``check`` counts a training: the worst
  re-synchronized forward quantity and gradient over every step (relative error), the worst
  re-synchronized update (in ulps), and the free-running trajectory (within tolerance,
  explained by a rounding cause, or cleared by the higher-precision arbiter).

Section 4's seed-faithful variants are not judged here: they are wrong on purpose, and the check
must flag them; the line only says how many of them were caught.

A failure's excess is e / bound; the line names the three worst by excess. The smallest
tolerance that would pass a failing comparison is its error itself (for an update, ⌈error⌉ ulp).
"""

from __future__ import annotations

import math

SHOWN = 3        # failures named in the line; the rest are counted


def report_verdict(results: dict) -> dict:
    """``{"line", "ok", "comparisons", "failed", "failures"}``: the headline, the counts and every
    failing comparison (worst first) as a flat dict (see :func:`_failure`)."""
    total, failures = _judge(results)
    return {"line": _line(results, total, failures), "ok": not failures, "comparisons": total,
            "failed": len(failures), "failures": failures}


def model_verdict(results: dict, model: str) -> dict:
    """The same for one model's comparisons alone: ``lenet5: PASS — …`` or ``lenet5: FAIL — …``
    with its worst three failures."""
    total, failures = _judge(results, model)
    if total == 0:
        line = f"{model}: NOTHING COMPARED — no backend pair ran"
    elif not failures:
        line = f"{model}: PASS — all {total} comparisons within tolerance"
    else:
        named = [f"{where(f)} {by_how_much(f)}" for f in failures[:SHOWN]]
        more = len(failures) - len(named)
        line = (f"{model}: FAIL — {len(failures)} of {total} comparisons exceed tolerance: "
                + "; ".join(named)
                + (f"; and {more} more" if more > 0 else ""))
    return {"line": line, "ok": not failures, "comparisons": total, "failed": len(failures),
            "failures": failures}


def _judge(results: dict, model: str | None = None) -> tuple[int, list[dict]]:
    """(how many comparisons, the failing ones worst first) over every parity and curves entry
    (only ``model``'s, when given)."""
    reproduce = results["command"] or "backprop-parity report"
    total, failures = 0, []
    judged = []                                  # (section, model, parity rows, checks)
    for entry in results["parity"]:
        judged.append(("parity", entry["model"], entry["rows"], []))
    for entry in results["curves"]:
        judged.append(("curves", entry["model"], [], entry["checks"]))
    for section, name, rows, checks in judged:
        if model is not None and name != model:
            continue
        for row in rows:
            total += 1
            if not row["ok"]:
                failures.append(_failure(section, name, row["dtype"], row["pair"], None, row["layer"],
                                         row["quantity"], row["kind"], None, row["rel_error"],
                                         row["tolerance"], reproduce))
        for check in checks:
            for kind in ("forward", "gradient", "update"):
                worst = check[f"step_{kind}"]
                if worst is None:
                    continue
                total += 1
                if not worst["ok"]:
                    failures.append(_failure(section, name, check["dtype"], check["pair"], check["config"],
                                             None, worst["quantity"], kind, worst["step"], worst["error"],
                                             worst["tolerance"], reproduce))
            total += 1
            if not check["free_running_ok"]:
                failures.append(_free_running_failure(check, name, reproduce))
    failures.sort(key=lambda f: -f["excess"] if f["excess"] is not None else -math.inf)
    return total, failures


def _failure(section, model, dtype, pair, config, layer, quantity, kind, step, error, tolerance,
             reproduce) -> dict:
    """One failing comparison; ``error`` None means it was not finite (or the shapes differed)."""
    excess = None if error is None else (error / tolerance if tolerance else None)
    if error is None:
        passes_at = None
    elif kind == "update":
        passes_at = float(math.ceil(error))
    else:
        passes_at = error
    return {"section": section, "model": model, "dtype": dtype, "pair": pair, "config": config,
            "layer": layer,
            "quantity": quantity, "kind": kind, "step": step, "error": error, "tolerance": tolerance,
            "excess": excess, "passes_at": passes_at, "reproduce": reproduce}


def _free_running_failure(check: dict, model: str, reproduce: str) -> dict:
    ratios = [None if error is None else error / bound for error, bound in
              ((check["curve_rel_error"], check["curve_tolerance"]),
               (check["parameters_rel_error"], check["parameters_tolerance"]))]
    excess = None if None in ratios else max(ratios)
    return {"section": "curves", "model": model, "dtype": check["dtype"], "pair": check["pair"],
            "config": check["config"],
            "layer": None, "quantity": "free-running", "kind": "free-running", "step": check["parting_step"],
            "error": None, "tolerance": None, "excess": excess, "passes_at": None, "reproduce": reproduce,
            "explanation": check["free_running"]}


def where(failure: dict) -> str:
    """``seed-002 float32 torch vs scratch layer 2 dW2``, ``lenet5 float32 adam-torch torch vs
    scratch per-step update dW1 at step 3``: the model, the dtype, the optimizer of a training."""
    config = f"{failure['config']} " if failure["config"] is not None else ""
    head = f"{failure['model']} {failure['dtype']} {config}{failure['pair']}"
    if failure["kind"] == "free-running":
        return f"{head} free-running"
    layer = f" layer {failure['layer']}" if failure["layer"] is not None else ""
    per_step = f" per-step {failure['kind']}" if failure["config"] is not None else ""
    step = f" at step {failure['step']}" if failure["step"] is not None else ""
    return f"{head}{per_step}{layer} {failure['quantity']}{step}"


def by_how_much(failure: dict) -> str:
    """``(rel err 1.23e-05, 12.3× the bound 1e-06)``; an update in ulps."""
    if failure["kind"] == "free-running":
        return f"({failure['explanation']})"
    if failure["error"] is None:
        return "(error not finite, or a shape or dtype mismatch)"
    if failure["excess"] is None:                     # a bound of 0: any error exceeds it
        return f"(error {failure['error']:.3g} against a bound of 0)"
    if failure["kind"] == "update":
        return (f"({failure['error']:.0f} ulp, {failure['excess']:.3g}× the bound "
                f"{failure['tolerance']:.0f} ulp)")
    return f"(rel err {failure['error']:.2e}, {failure['excess']:.3g}× the bound {failure['tolerance']:.0e})"


def passes_at(failure: dict) -> str:
    """The smallest tolerance that would pass, as text."""
    if failure["passes_at"] is None:
        return "none (not a tolerance question)"
    if failure["kind"] == "update":
        return f"{failure['passes_at']:.0f} ulp"
    return f"{failure['passes_at']:.3e}"


def _line(results: dict, total: int, failures: list[dict]) -> str:
    entries = [*results["parity"], *results["curves"]]
    models = list(dict.fromkeys(entry["model"] for entry in entries))
    dtypes = list(dict.fromkeys([row["dtype"] for e in results["parity"] for row in e["rows"]]
                                + [c["dtype"] for e in results["curves"] for c in e["checks"]]))
    pairs = list(dict.fromkeys([row["pair"] for e in results["parity"] for row in e["rows"]]
                               + [c["pair"] for e in results["curves"] for c in e["checks"]]))
    scope = (f"{', '.join(models) or 'no model'}; {', '.join(dtypes) or 'no dtype'}; "
             f"{', '.join(pairs) or 'no backend pair'}")
    variants = results["variants"]["rows"]
    caught = sum(row["detected"] for row in variants)
    tail = (f" The {len(variants)} seed-faithful variant checks of section 4 are not counted: they are "
            f"wrong on purpose, and {'all' if caught == len(variants) else f'only {caught} of'} "
            f"{len(variants)} were caught." if variants else "")
    if total == 0:
        return f"verdict: NOTHING COMPARED — no backend pair ran ({scope}).{tail}"
    if not failures:
        return f"verdict: PASS — all {total} comparisons within tolerance ({scope}).{tail}"
    named = [f"{where(f)} {by_how_much(f)}" for f in failures[:SHOWN]]
    more = len(failures) - len(named)
    return (f"verdict: FAIL — {len(failures)} of {total} comparisons exceed tolerance ({scope}): "
            + "; ".join(named) + (f"; and {more} more" if more > 0 else "") + f".{tail}")
