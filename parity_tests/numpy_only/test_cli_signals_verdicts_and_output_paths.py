"""The command line's edges found by using it from outside, NumPy only.

A bare ``backprop-parity``; ``report``'s verdict line and exit status; Ctrl-C swallowed by a
library; output paths that are FIFOs or symbolic links; the MLP shorthand's flags on a
convolutional stack; an absurd number of steps; ``--from-json`` and ``--spec`` errors that name
the file given and say what it is; the progress lines of ``explain``. Each case asserts the exit
status (:mod:`reports.cli.exit_codes`) and the one line the user reads.
"""

from __future__ import annotations

import configparser
import os
import re
import signal
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from reports.cli import exit_codes
from reports.cli import report as cli_report
from reports.cli import train as cli_train
from reports.cli.main import main, run_command
from reports.cli.work import MAX_STEPS
from scratch.spec import ModelSpec

ROOT = Path(__file__).resolve().parents[2]
USAGE = exit_codes.EXIT_USAGE


@pytest.fixture
def no_frameworks(monkeypatch):
    """Any command that gets as far as configuring torch/TensorFlow/JAX fails the test."""
    import twins.hygiene

    def refuse(*args, **kwargs):
        raise AssertionError("configure_frameworks() ran before the bad input was reported")

    monkeypatch.setattr(twins.hygiene, "configure_frameworks", refuse)


def one_error(capsys, code: int, pattern: str, expected_code: int = USAGE) -> str:
    out, err = capsys.readouterr()
    assert code == expected_code, (code, err)
    lines = err.splitlines()
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(pattern, lines[0]), f"{lines[0]!r} does not match {pattern!r}"
    return lines[0]


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


# --------------------------------------------------------------------------- a bare command


def test_a_bare_command_prints_the_help_and_exits_0(capsys):
    assert main([]) == exit_codes.EXIT_OK
    out, err = capsys.readouterr()
    assert out.startswith("usage: backprop-parity") and "commands:" in out and "exit status:" in out
    assert err == ""


# --------------------------------------------------------------------------- report's verdict


def _results(ok: bool) -> dict:
    """The least a results dict needs for the report's verdict: one model's parity row, no training."""
    row = {"dtype": "float64", "pair": "torch vs scratch", "layer": 2, "quantity": "dW2", "kind": "gradient",
           "rel_error": 3e-13 if not ok else 1e-15, "tolerance": 1e-13, "ok": ok}
    return {"command": "backprop-parity report --quick", "parity": [{"model": "seed-002", "rows": [row]}],
            "curves": [], "variants": {"rows": []}}


@pytest.mark.parametrize("ok", [True, False], ids=["pass", "planted-fail"])
def test_report_prints_its_verdict_line_and_exits_1_on_a_fail(ok, monkeypatch, tmp_path, capsys):
    """The verdict line is the last line on stdout; a failing comparison makes the status 1 (the
    full report with a planted FAIL: ``parity_tests/frameworks/test_report.py``)."""
    written = []
    monkeypatch.setattr(cli_report, "load_results", lambda path: _results(ok))
    monkeypatch.setattr(cli_report, "write_report", lambda results, out: written.append(results) or [])
    code = main(["report", "--from-json", str(tmp_path / "saved.json"), "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert written, "the report is written whatever the verdict"
    last = out.splitlines()[-1]
    if ok:
        assert code == exit_codes.EXIT_OK and last.startswith("verdict: PASS — all 1 comparisons")
    else:
        assert code == exit_codes.EXIT_PARITY_FAILED
        assert last.startswith("verdict: FAIL — 1 of 1 comparisons exceed tolerance (seed-002; float64; "
                               "torch vs scratch): seed-002 float64 torch vs scratch layer 2 dW2 (rel err "
                               "3.00e-13, 3× the bound")


def test_from_json_errors_name_the_file_given(tmp_path, capsys, no_frameworks):
    saved = tmp_path / "saved-run.json"
    saved.write_text('{"format": "backprop-parity-report/2"}', encoding="utf-8")
    code = main(["report", "--from-json", str(saved), "--out", str(tmp_path / "out")])
    one_error(capsys, code, rf"^error: {re.escape(str(saved))}: \(top level\): missing key")
    assert not (tmp_path / "out").exists()
    saved.write_text('{"format": "backprop-parity-report/1"}', encoding="utf-8")      # one section per kind
    code = main(["report", "--from-json", str(saved), "--out", str(tmp_path / "out")])
    one_error(capsys, code, rf"^error: {re.escape(str(saved))}: format: expected one of "
                            "'backprop-parity-report/2', got 'backprop-parity-report/1'$")
    assert not (tmp_path / "out").exists()


def test_tox_report_installs_every_backend():
    """`tox -e report` is the README's main job: all four backends, JAX/optax included."""
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini", encoding="utf-8")
    extras = set(tox["testenv:report"]["extras"].split())
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"]
    assert {"torch", "tf", "jax"} <= extras <= set(declared)
    assert any(requirement.startswith("optax") for requirement in declared["jax"])


# --------------------------------------------------------------------------- Ctrl-C


class _SwallowsInterrupts:
    """Raises SIGINT in its finalizer, where Python can only print "Exception ignored in …" and
    go on — what JAX did to a Ctrl-C during `check`."""

    def __del__(self):
        signal.raise_signal(signal.SIGINT)


SWALLOWED = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@SWALLOWED
def test_an_interrupt_a_library_swallows_still_exits_130(capsys):
    before = signal.getsignal(signal.SIGINT)
    finished = []

    def command(args):
        finalized = _SwallowsInterrupts()
        del finalized                               # the KeyboardInterrupt is printed and dropped
        finished.append(True)
        return exit_codes.EXIT_OK

    assert run_command(command, None) == exit_codes.EXIT_INTERRUPTED
    assert finished, "the command ran on past the interrupt, as it did under JAX"
    assert capsys.readouterr().err.splitlines()[-1] == "error: interrupted"
    assert signal.getsignal(signal.SIGINT) is before, "the previous handler is restored"


@SWALLOWED
def test_an_error_after_a_swallowed_interrupt_is_still_130(capsys):
    def command(args):
        finalized = _SwallowsInterrupts()
        del finalized
        raise RuntimeError("a half-torn-down library")

    assert run_command(command, None) == exit_codes.EXIT_INTERRUPTED
    assert capsys.readouterr().err.splitlines()[-1] == "error: interrupted"


def test_sigint_during_a_real_run_exits_130(tmp_path):
    """A real SIGINT sent to `train` in a child process, once its training loop has started."""
    script = ("import sys\n"
              "from reports.cli import train\n"
              "from reports.cli.main import main\n"
              "original = train.train\n"
              "def announced(*args, **kwargs):\n"
              "    print('training', file=sys.stderr, flush=True)\n"
              "    return original(*args, **kwargs)\n"
              "train.train = announced\n"
              "raise SystemExit(main(['train', '--dataset', 'xor', '--epochs', '5000000', '-q', "
              f"'--json', {str(tmp_path / 'history.json')!r}]))\n")
    child = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert child.stderr.readline() == "training\n"
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == exit_codes.EXIT_INTERRUPTED, err
    assert err.splitlines()[-1] == "error: interrupted" and "Traceback" not in err
    assert out == "" and not (tmp_path / "history.json").exists()


# --------------------------------------------------------------------------- outputs that are not files


def _special(tmp_path: Path, kind: str) -> tuple[Path, Path | None]:
    """(a FIFO, or a symbolic link to a regular file; that file or None)."""
    path = tmp_path / f"out-{kind}"
    if kind == "fifo":
        os.mkfifo(path)
        return path, None
    target = tmp_path / "target.json"
    target.write_text("kept\n", encoding="utf-8")
    path.symlink_to(target)
    return path, target


def _unchanged(path: Path, kind: str, target: Path | None) -> None:
    mode = os.lstat(path).st_mode
    assert stat.S_ISFIFO(mode) if kind == "fifo" else stat.S_ISLNK(mode), "the node itself is kept"
    if target is not None:
        assert target.read_text(encoding="utf-8") == "kept\n"
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == [], "no temporary file"


@pytest.mark.parametrize("kind", ["fifo", "symlink"])
@pytest.mark.parametrize("flag", ["--json", "--save"])
def test_train_refuses_an_output_that_is_not_a_regular_file(kind, flag, tmp_path, capsys, monkeypatch):
    path, target = _special(tmp_path, kind)
    monkeypatch.setattr(cli_train, "train", lambda *a, **k: pytest.fail("trained before the check"))
    code = main(["train", "--dataset", "xor", "--epochs", "1", "-q", flag, str(path)])
    what = "a FIFO" if kind == "fifo" else "is a symbolic link"
    one_error(capsys, code, rf"^error: {flag} {re.escape(str(path))}: .*{what}.*not a regular file")
    _unchanged(path, kind, target)


@pytest.mark.parametrize("kind", ["fifo", "symlink"])
def test_explain_and_report_refuse_an_output_that_is_not_a_regular_file(kind, tmp_path, capsys,
                                                                        no_frameworks):
    path, target = _special(tmp_path, kind)
    one_error(capsys, main(["explain", "--json", str(path)]), rf"^error: --json {re.escape(str(path))}: ")
    _unchanged(path, kind, target)
    out = tmp_path / "report"
    out.mkdir()
    inside, _ = _special(out, kind)
    inside.rename(out / "report.md")
    code = main(["report", "--from-json", str(tmp_path / "missing.json"), "--out", str(out)])
    one_error(capsys, code, rf"^error: --out {re.escape(str(out / 'report.md'))}: .*not a regular file")


@pytest.mark.parametrize("kind", ["fifo", "symlink"])
def test_the_atomic_writer_never_replaces_what_is_not_a_regular_file(kind, tmp_path):
    """The Python API too: ``write_json`` (every JSON output) and ``save_model`` go through
    ``write_atomically``, which refuses before writing anything."""
    from reports.json_file import write_json
    from scratch.errors import ParityError
    from scratch.model import MLP, save_model

    path, target = _special(tmp_path, kind)
    with pytest.raises(ParityError, match=re.escape(str(path)) + ".*not a regular file"):
        write_json(path, {"a": 1})
    with pytest.raises((OSError, ParityError), match="not a regular file"):
        save_model(MLP(ModelSpec((2, 3, 2))), path)
    _unchanged(path, kind, target)


# --------------------------------------------------------------------------- MLP flags on a conv stack


@pytest.mark.parametrize("command", ["train", "explain"])
@pytest.mark.parametrize("flags", [["--layers", "784,10"], ["--dropout", "0.2"], ["--hidden", "tanh"],
                                   ["--hidden", "tanh", "--dropout", "0.2"]], ids=lambda f: "+".join(f[::2]))
def test_mlp_flags_on_a_conv_model_name_the_flag_and_the_fix(command, flags, capsys, no_frameworks):
    named = ", ".join(flag for flag in ("--layers", "--hidden", "--dropout") if flag in flags)
    line = one_error(capsys, main([command, "--model", "lenet5", *flags]),
                     rf"^error: {named}: th(is flag describes|ese flags describe) a stack of dense layers")
    assert "--model lenet5 is a conv2d" in line and "pass it with --spec" in line
    assert "layer_sizes" not in line


def test_mlp_flags_on_an_mlp_still_apply(capsys):
    assert main(["train", "--dataset", "xor", "--layers", "2,3,2", "--hidden", "tanh", "--epochs", "1",
                 "-q"]) == 0
    assert "2-3-2 tanh" in capsys.readouterr().out


# --------------------------------------------------------------------------- absurd work


@pytest.mark.parametrize(("argv", "figures"), [
    (["--dataset", "xor", "--epochs", str(10**23)],
     f"--epochs {10**23} × ⌈4 training rows / full batch⌉ = 1e+23"),
    (["--dataset", "xor", "--epochs", str(MAX_STEPS + 1)],
     f"--epochs {MAX_STEPS + 1} × ⌈4 training rows / full batch⌉ = 1e+07"),
    (["--dataset", "spirals", "--batch-size", "1", "--epochs", str(MAX_STEPS // 400 + 1)],
     f"--epochs {MAX_STEPS // 400 + 1} × ⌈400 training rows / batch 1⌉ = 1e+07"),
    (["--dataset", "spirals", "--batch-size", "1", "--limit", "40", "--epochs", str(MAX_STEPS // 40 + 1)],
     f"--epochs {MAX_STEPS // 40 + 1} × ⌈40 training rows / batch 1⌉ = 1e+07"),
], ids=["1e23", "just-over-full-batch", "just-over-batch-1", "with-limit"])
def test_absurd_epochs_are_refused_before_the_first_step(argv, figures, capsys, monkeypatch):
    monkeypatch.setattr(cli_train, "train", lambda *a, **k: pytest.fail("trained before the check"))
    line = one_error(capsys, main(["train", *argv, "-q"]), r"^error: ")
    assert line.startswith(f"error: {figures}") and "over the cap of 1e+07" in line, line


def test_the_step_cap_is_inclusive():
    from reports.cli.exit_codes import UsageError

    spec = cli_train.default_spec("xor")
    cli_train.check_work(spec.replace(epochs=MAX_STEPS, batch_size=None), 4)       # exactly the cap
    with pytest.raises(UsageError, match="over the cap"):
        cli_train.check_work(spec.replace(epochs=MAX_STEPS // 2 + 1, batch_size=2), 4)


def test_check_refuses_absurd_steps(capsys, no_frameworks):
    line = one_error(capsys, main(["check", "--steps", str(10**12)]),
                     r"^error: --steps 1000000000000 = 1e\+12")
    assert "over the cap" in line


# --------------------------------------------------------------------------- a train --json given as --spec


@pytest.mark.parametrize("command", ["train", "check", "explain"])
def test_a_train_result_given_as_spec_says_what_it_is(command, tmp_path, capsys, no_frameworks):
    history = tmp_path / "run.json"
    assert main(["train", "--dataset", "xor", "--epochs", "2", "-q", "--json", str(history)]) == 0
    capsys.readouterr()
    line = one_error(capsys, main([command, "--spec", str(history)]), rf"^error: {re.escape(str(history))}: ")
    assert "the output of `backprop-parity train --json`" in line
    assert "--spec expects a ModelSpec JSON" in line and 'under the key "spec"' in line
    assert "field 'command'" not in line


def test_an_ordinary_bad_spec_keeps_its_own_message(tmp_path, capsys, no_frameworks):
    bad = tmp_path / "spec.json"
    bad.write_text('{"layer_sizes": [2, 3, 2], "command": "x"}', encoding="utf-8")
    one_error(capsys, main(["train", "--spec", str(bad)]), r"field 'command': unknown field")


# --------------------------------------------------------------------------- progress lines


def test_explain_announces_its_slow_phases_on_stderr_only(monkeypatch, capsys):
    """Stub the frameworks: the lines come before each phase, and stdout keeps its format."""
    import reports.explain.walk as walk
    import twins.hygiene

    phases = []
    monkeypatch.setattr(twins.hygiene, "configure_frameworks",
                        lambda **kw: phases.append(("configure", capsys.readouterr().err)))
    monkeypatch.setattr(walk, "explain", lambda *a: phases.append(("walk", capsys.readouterr().err)) or [])
    monkeypatch.setattr(walk, "format_table", lambda rows: "(table)")
    assert main(["explain", "--layers", "4,3,2", "--batch", "2"]) == 0
    assert phases == [("configure", "explain: loading the frameworks …\n"),
                      ("walk", "explain: one backward pass of 2 samples, walked in each framework …\n")]
    out, err = capsys.readouterr()
    assert out.splitlines()[0].startswith("spec: {") and err == ""
