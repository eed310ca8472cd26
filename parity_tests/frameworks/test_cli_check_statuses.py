"""``backprop-parity check`` with a backend left out (issue 10, item 5): the run still compares
the others, and its summary line names every skipped backend and why — never a bare
"13 of 13 comparisons within tolerance"."""

from __future__ import annotations

import re

import pytest

from reports.cli.main import main
from scratch.spec import ModelSpec, OptimizerSpec

pytest.importorskip("torch")
pytest.importorskip("tensorflow")
pytest.importorskip("jax")

SUMMARY = re.compile(r"^(\d+) of (\d+) comparisons within tolerance \((float\d+)\), "
                     r"backends (.+?)(; skipped: .+)?\.$", re.M)
# float64 Keras would round λ/2 = 0.005 to float32, so its backend refuses this spec.
KERAS_REFUSES = dict(l2=0.01, dtype="float64")


def _check(argv, capsys) -> tuple[int, re.Match]:
    code = main(["check", *argv])
    out, err = capsys.readouterr()
    summary = SUMMARY.search(out)
    assert summary, out + err
    return code, summary


def test_backend_that_cannot_express_the_spec_is_named_in_the_summary(tmp_path, capsys, global_seed):
    """Keras cannot hold this L2 factor exactly, so it sits out; torch and scratch still agree."""
    spec = ModelSpec((5, 4, 3), seed=global_seed, batch_size=4, **KERAS_REFUSES)
    path = tmp_path / "spec.json"
    path.write_text(spec.to_json(), encoding="utf-8")
    code, summary = _check(["--spec", str(path), "--batch", "8", "--steps", "2"], capsys)
    assert code == 0
    assert summary[1] == summary[2]
    assert summary[4] == "scratch, torch, jax"
    assert summary[5] == "; skipped: keras (cannot express this spec)"


def test_backend_without_a_training_curve_is_named_in_the_summary(tmp_path, capsys, global_seed):
    """Keras has no torch-convention Adam: it joins the one-step comparison, not the curves (JAX's
    optax Adam is torch's, so JAX trains)."""
    spec = ModelSpec((5, 4, 3), seed=global_seed, batch_size=4,
                     optimizer=OptimizerSpec.framework_default("adam", "torch"))
    path = tmp_path / "spec.json"
    path.write_text(spec.to_json(), encoding="utf-8")
    code, summary = _check(["--spec", str(path), "--batch", "8", "--steps", "2"], capsys)
    assert code == 0
    assert summary[4] == "scratch, torch, keras, jax"
    assert summary[5] == ("; skipped: keras vs scratch training (cannot express this spec), "
                          "keras vs torch training (cannot express this spec)")


def test_backend_not_installed_is_named_in_the_summary(monkeypatch, capsys, global_seed):
    monkeypatch.setattr("twins.backends.available_backends", lambda: ["scratch", "torch"])
    code, summary = _check(["--batch", "4", "--steps", "1", "--seed", str(global_seed)], capsys)
    assert code == 0
    assert summary[4] == "scratch, torch"
    assert summary[5] == "; skipped: keras (not installed), jax (not installed)"


def test_two_backends_cannot_express_the_spec_is_status_3(tmp_path, capsys):
    """Only scratch and Keras asked for, and Keras sits out: nothing to compare (3), not 1."""
    spec = ModelSpec((5, 4, 3), **KERAS_REFUSES)
    path = tmp_path / "spec.json"
    path.write_text(spec.to_json(), encoding="utf-8")
    code = main(["check", "--spec", str(path), "--backends", "scratch,keras", "--steps", "0"])
    err = capsys.readouterr().err
    assert code == 3, err
    last = err.splitlines()[-1]
    assert last.startswith("error: nothing to compare: fewer than two backends could run"), err
    assert "keras: cannot express this spec" in err


def test_each_slow_phase_is_announced_on_stderr_and_stdout_keeps_its_format(tmp_path, capsys, global_seed):
    """Issue 18: `check` printed nothing for 10–19 s. One line per phase on stderr, in order."""
    spec = ModelSpec((5, 4, 3), seed=global_seed, batch_size=4)
    path = tmp_path / "spec.json"
    path.write_text(spec.to_json(), encoding="utf-8")
    code = main(["check", "--spec", str(path), "--backends", "scratch,torch", "--batch", "8", "--steps", "2"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert err.splitlines() == ["check: loading the frameworks …",
                                "check: building the backends scratch, torch …",
                                "check: one forward and backward pass of 8 samples in each backend …",
                                "check: 2 training step(s) in each backend pair …"]
    assert out.startswith("verdict: PASS") and SUMMARY.search(out)
