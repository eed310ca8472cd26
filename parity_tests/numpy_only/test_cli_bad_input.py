"""Bad input on the command line (issue 10, item 5), NumPy only.

Each case is what a new user tried: it must end in one ``error: ...`` line with its own exit
status (:mod:`reports.cli.exit_codes`), before any framework is imported and before any file is
written. The ``no_frameworks`` fixture makes ``configure_frameworks`` (the first step of every
command that imports torch or TensorFlow) fail the test, so a check that comes too late fails
here instead of starting a long run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from reports.cli import check as cli_check
from reports.cli import exit_codes
from reports.cli import train as cli_train
from reports.cli.main import main
from scratch.data import drawn_batch
from scratch.errors import SpecError
from scratch.model import MLP
from scratch.spec import ModelSpec

ROOT = Path(__file__).resolve().parents[2]
USAGE, PARITY, BACKEND, DIVERGED = (exit_codes.EXIT_USAGE, exit_codes.EXIT_PARITY_FAILED,
                                    exit_codes.EXIT_BACKEND_UNAVAILABLE, exit_codes.EXIT_DIVERGED)


@pytest.fixture
def no_frameworks(monkeypatch):
    """Any command that gets as far as configuring torch/TensorFlow fails the test."""
    import twins.hygiene

    def refuse(*args, **kwargs):
        raise AssertionError("configure_frameworks() ran before the bad input was reported")

    monkeypatch.setattr(twins.hygiene, "configure_frameworks", refuse)


def one_error(capsys, code: int, expected_code: int, pattern: str) -> str:
    """Assert exit ``expected_code``, nothing on stdout and one ``error:`` line matching ``pattern``."""
    out, err = capsys.readouterr()
    assert code == expected_code, (code, err)
    assert "Traceback" not in err and out == "", (out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(pattern, lines[0]), f"{lines[0]!r} does not match {pattern!r}"
    return lines[0]


def usage_error(capsys, code: int, pattern: str) -> None:
    """argparse's usage error: exit 2, the usage and one ``error:`` line naming the flag."""
    err = capsys.readouterr().err
    assert code == USAGE, err
    assert "usage: backprop-parity" in err and "Traceback" not in err
    assert re.search(pattern, err.splitlines()[-1]), err


# --------------------------------------------------------------------------- check --spec


@pytest.mark.parametrize("kind", ["missing", "folder", "not-utf8"])
def test_check_spec_file_that_cannot_be_read(kind, tmp_path, capsys, no_frameworks):
    path = tmp_path / "spec.json"
    if kind == "folder":
        path.mkdir()
    elif kind == "not-utf8":
        path.write_bytes(b'{"layer_sizes": [4, 3, 2], "init": "\xff"}')
    reason = {"missing": "No such file", "folder": "Is a directory", "not-utf8": "not UTF-8"}[kind]
    code = main(["check", "--spec", str(path)])
    one_error(capsys, code, USAGE, rf"^error: {re.escape(str(path))}: cannot read \({reason}")


# --------------------------------------------------------------------------- bench


@pytest.mark.parametrize("name", ["rmsprop", "momentum", "adamw"])
def test_bench_refuses_an_optimizer_it_does_not_implement(name, capsys, no_frameworks):
    usage_error(capsys, main(["bench", "--optimizers", f"sgd,{name}"]),
                rf"--optimizers: unknown name '{name}'.*expected one of sgd, adam$")


def test_bench_refuses_more_rows_than_mnist_has(capsys, no_frameworks):
    code = main(["bench", "--batches", "64,100000"])
    one_error(capsys, code, USAGE, r"--batches 100000: MNIST has only 60000 training samples")


@pytest.mark.parametrize("extra, pattern", [
    (["--dtypes", "float64", "--dtype", "float32"], r"--dtypes and --dtype both set the bench's dtype"),
    (["--optimizers", "sgd", "--optimizer", "adam"], r"--optimizers and --optimizer both set"),
    (["--batches", "8", "--batch-size", "8"], r"--batches and --batch-size both set the bench's batch"),
    (["--layers", "784,10"], r"--layers: this flag describes a stack of dense layers"),
    (["--batches", "100000"], r"--batches 100000: MNIST has only 60000 training samples")])
def test_bench_lenet5_refuses_what_it_cannot_time(extra, pattern, capsys, no_frameworks):
    one_error(capsys, main(["bench", "--model", "lenet5", *extra]), USAGE, pattern)


def test_bench_row_limit_is_the_bundled_mnist():
    from reports.bench.grid import MNIST_TRAIN_SAMPLES, mnist_pixels

    assert len(mnist_pixels().x_train) == MNIST_TRAIN_SAMPLES


@pytest.mark.parametrize(("flag", "value"), [("--rounds", "0"), ("--threads", "-1"), ("--threads", "0"),
                                             ("--peak-size", "0"), ("--settle", "-1"), ("--settle", "nan"),
                                             ("--batches", "64,0"), ("--dtypes", "float16")])
def test_bench_numbers_out_of_range_are_usage_errors(flag, value, capsys, no_frameworks):
    usage_error(capsys, main(["bench", flag, value]), rf"argument {flag}: ")


@pytest.mark.parametrize("where", ["under-a-file", "a-folder"])
def test_bench_unwritable_json_fails_before_the_run(where, tmp_path, capsys, no_frameworks):
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    path = tmp_path / "a-file" / "bench.json" if where == "under-a-file" else tmp_path
    code = main(["bench", "--json", str(path)])
    one_error(capsys, code, USAGE, rf"^error: --json {re.escape(str(path))}: ")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_output_folder_that_refuses_files_is_found_even_as_root(tmp_path, capsys, no_frameworks):
    """Permission bits say nothing to root; /proc refuses new files anyway."""
    code = main(["bench", "--json", "/proc/bench.json"])
    one_error(capsys, code, USAGE, r"^error: --json /proc/bench.json: cannot create a file in /proc")


# --------------------------------------------------------------------------- train diverges


@pytest.mark.parametrize("argv", [
    ["--dataset", "mnist", "--limit", "500", "--lr", "1e6"],
    ["--dataset", "xor", "--lr", "1e300"],
    ["--dataset", "xor", "--loss", "mse", "--output", "identity", "--dtype", "float32", "--lr", "1e38"],
], ids=["mnist-lr-1e6", "xor-lr-1e300", "xor-float32-overflows-to-inf"])
def test_train_stops_a_diverging_run_with_status_4(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("BACKPROP_PARITY_DATA", raising=False)
    weights, history = tmp_path / "w.safetensors", tmp_path / "h.json"
    code = main(["train", *argv, "-q", "--save", str(weights), "--json", str(history)])
    line = one_error(capsys, code, DIVERGED, r"^error: training diverged: the loss (is inf|reached \S+) "
                                             r"at step \d+ of \d+")
    assert "no weight or history file written" in line
    assert sorted(tmp_path.iterdir()) == []


def test_divergence_is_checked_on_every_step_not_only_the_last(capsys):
    """The step named is the first bad one: with lr 1e300 the second step's loss explodes."""
    assert main(["train", "--dataset", "xor", "--lr", "1e300", "-q"]) == DIVERGED
    assert "at step 2 of 300" in capsys.readouterr().err


# --------------------------------------------------------------------------- output paths


@pytest.mark.parametrize("same", ["identical", "dot-dot"])
def test_save_and_json_to_the_same_file_is_refused_before_work(same, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli_train, "load_dataset", lambda *a, **k: pytest.fail("loaded data before checking"))
    target = tmp_path / "model.out"
    other = str(target) if same == "identical" else str(tmp_path / "sub" / ".." / "model.out")
    code = main(["train", "--dataset", "xor", "--save", str(target), "--json", other])
    one_error(capsys, code, USAGE, rf"^error: --json {re.escape(other)}: the same file as --save")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["under-a-file", "is-a-file"])
def test_report_unwritable_out_is_one_error(where, tmp_path, capsys, no_frameworks):
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    out = tmp_path / "a-file" / ("report" if where == "under-a-file" else "")
    code = main(["report", "--quick", "--out", str(out)])
    one_error(capsys, code, USAGE, r"^error: --out .*(is not a folder|exists and is not a folder)$")


@pytest.mark.parametrize("argv", [["--threads", "-1"], ["--data-dir", "<tmp>/nowhere"]],
                         ids=["threads", "data-dir"])
def test_report_checks_its_flags_before_running(argv, tmp_path, capsys, no_frameworks):
    argv = [arg.replace("<tmp>", str(tmp_path)) for arg in argv]
    code = main(["report", "--quick", "--out", str(tmp_path / "r"), *argv])
    one_error(capsys, code, USAGE, r"--threads must be >= 0|nowhere: MNIST folder .* does not exist")


def test_report_write_failure_is_one_error(tmp_path, monkeypatch):
    """Should a write fail after the check (disk full, a race), it is still one project error."""
    from reports.cli import report as cli_report
    from scratch.errors import DataError

    def fail(path, payload):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("scratch.weights.write_atomically", fail)
    monkeypatch.setattr(cli_report, "render", lambda results: {"report.md": b"x"})
    with pytest.raises(DataError, match=r"--out .*: cannot write \(No space left on device\)"):
        cli_report.write_report({}, tmp_path / "r")


def test_explain_json_folder_is_refused_before_work(tmp_path, capsys, no_frameworks):
    code = main(["explain", "--layers", "4,3,2", "--json", str(tmp_path)])
    one_error(capsys, code, USAGE, r"is a folder; expected a file path")


# --------------------------------------------------------------------------- huge models


@pytest.mark.parametrize("command", [
    ["train", "--dataset", "mnist", "--layers", "784,100000000,10"],
    ["explain", "--layers", "784,100000000,10"],
], ids=["train", "explain"])
def test_a_huge_layer_is_refused_before_allocating(command, capsys, no_frameworks):
    code = main(command)
    one_error(capsys, code, USAGE, r"layer 1 \(784 → 100000000\) .*; a training step \(.*\) needs "
                                   r"about [\d.]+ TiB per backend copy .* but only [\d.]+ \w+ of memory is "
                                   r"available")


def test_check_refuses_a_huge_spec_file(tmp_path, capsys, no_frameworks):
    spec = tmp_path / "huge.json"
    spec.write_text('{"layer_sizes": [784, 100000000, 10]}', encoding="utf-8")
    code = main(["check", "--spec", str(spec), "--backends", "scratch,torch"])
    one_error(capsys, code, USAGE, r"layer 1 \(784 → 100000000\).*2 backends")


# --------------------------------------------------------------------------- check: statuses, backends, seed


def test_check_unknown_backend_is_a_usage_error(capsys, no_frameworks):
    code = main(["check", "--backends", "scratch,pytorch"])
    one_error(capsys, code, USAGE, r"^error: --backends: unknown backend 'pytorch'; "
                                   r"expected one of scratch, torch, keras, jax$")


def test_check_backend_listed_twice_is_a_usage_error(capsys, no_frameworks):
    one_error(capsys, main(["check", "--backends", "scratch,scratch"]), USAGE, r"listed twice")


def test_check_with_one_backend_has_nothing_to_compare(capsys, no_frameworks):
    code = main(["check", "--backends", "scratch"])
    one_error(capsys, code, BACKEND, r"^error: nothing to compare: the backends to run are scratch ")


def test_check_requested_backend_not_installed_is_status_3(monkeypatch, capsys, no_frameworks):
    monkeypatch.setattr("twins.backends.available_backends", lambda: ["scratch", "torch"])
    code = main(["check", "--backends", "scratch,keras"])
    one_error(capsys, code, BACKEND, r"^error: --backends: backend 'keras' needs tensorflow, which is not "
                                     r"installed \(installed: scratch, torch\)$")


def test_check_default_backends_are_the_installed_ones(monkeypatch, capsys, no_frameworks):
    monkeypatch.setattr("twins.backends.available_backends", lambda: ["scratch"])
    one_error(capsys, main(["check"]), BACKEND, r"nothing to compare.*\(installed: scratch\)")


def test_parity_failure_and_nothing_to_compare_have_different_statuses():
    assert len({exit_codes.EXIT_OK, PARITY, USAGE, BACKEND, DIVERGED, exit_codes.EXIT_INTERRUPTED,
                exit_codes.EXIT_BROKEN_PIPE}) == 7


def test_check_summary_names_every_skipped_backend():
    line = cli_check.summary_line(13, 0, "float64", ["scratch", "torch"],
                                  {"keras": "not installed"})
    assert line == ("13 of 13 comparisons within tolerance (float64), backends scratch, torch; "
                    "skipped: keras (not installed).")
    assert "skipped" not in cli_check.summary_line(13, 1, "float32", ["scratch", "torch", "keras"], {})


def _mnist_batch(seed: int, batch: int = 16):
    spec = ModelSpec((784, 8, 10))
    return drawn_batch(spec, batch, seed)


def test_check_seed_draws_the_mnist_batch(monkeypatch):
    monkeypatch.delenv("BACKPROP_PARITY_DATA", raising=False)
    (x0, y0), (x0_again, y0_again), (x1, _) = _mnist_batch(0), _mnist_batch(0), _mnist_batch(1)
    assert x0.shape == (16, 784) and y0.shape == (16,)
    np.testing.assert_array_equal(x0, x0_again)
    np.testing.assert_array_equal(y0, y0_again)
    assert not np.array_equal(x0, x1)
    rows = {row.tobytes() for row in x0}
    assert len(rows) == 16                                  # drawn without replacement


@pytest.mark.parametrize("command", ["train", "check", "explain", "bench"])
def test_seed_must_not_be_negative(command, capsys, no_frameworks):
    usage_error(capsys, main([command, "--seed", "-1"]),
                r"argument --seed: expected an integer >= 0, got '-1'")


# --------------------------------------------------------------------------- NumPy integers


@pytest.mark.parametrize("integer", [np.int64, np.int32, np.uint16], ids=lambda t: t.__name__)
def test_spec_accepts_numpy_integers(integer):
    spec = ModelSpec(tuple(integer(n) for n in (4, 3, 2)), batch_size=integer(64), epochs=integer(2),
                     seed=integer(5))
    assert spec == ModelSpec((4, 3, 2), batch_size=64, epochs=2, seed=5)
    assert all(type(n) is int for n in (*spec.layer_sizes, spec.batch_size, spec.epochs, spec.seed))
    assert ModelSpec.from_json(spec.to_json()) == spec
    assert MLP(spec).weights[0].shape == (3, 4)


@pytest.mark.parametrize(("field", "value"), [("epochs", 2.0), ("seed", True), ("batch_size", np.float64(8)),
                                              ("epochs", np.bool_(True))])
def test_spec_still_refuses_floats_and_bools(field, value):
    with pytest.raises(SpecError, match=rf"spec field '{field}': expected an integer, got"):
        ModelSpec((4, 3, 2), **{field: value})


# --------------------------------------------------------------------------- the process


def _run_python(code: str, **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, text=True, timeout=120, **kwargs)


def test_bad_input_is_reported_before_any_framework_import(tmp_path):
    """Every command validates its arguments and input files before torch or TensorFlow load."""
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    cases = [
        (["check", "--weights", str(tmp_path / "missing.safetensors")], USAGE, "cannot read"),
        (["check", "--spec", str(tmp_path)], USAGE, "cannot read"),
        (["check", "--backends", "pytorch"], USAGE, "unknown backend"),
        (["explain", "--weights", str(tmp_path / "missing.safetensors")], USAGE, "cannot read"),
        (["bench", "--batches", "100000"], USAGE, "MNIST has only"),
        (["report", "--out", str(tmp_path / "a-file" / "r")], USAGE, "is not a folder"),
        (["report", "--from-json", str(tmp_path / "missing.json")], USAGE, "cannot read"),
        (["train", "--save", str(tmp_path / "x"), "--json", str(tmp_path / "x")], USAGE, "same file"),
    ]
    code = ("import sys\n"
            "from reports.cli.main import main\n"
            f"for argv, expected, _ in {cases!r}:\n"
            "    assert main(argv) == expected, argv\n"
            "print(sorted(m for m in ('torch', 'tensorflow', 'keras', 'jax') if m in sys.modules))\n")
    result = _run_python(code, capture_output=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    errors = result.stderr.splitlines()
    assert len(errors) == len(cases), result.stderr
    for line, (argv, _, words) in zip(errors, cases, strict=True):
        assert line.startswith("error: ") and words in line, (argv, line)


@pytest.mark.parametrize("argv", [["train", "--dataset", "xor", "--epochs", "3", "-q"], ["--version"]],
                         ids=["train", "version"])
def test_closed_stdout_exits_quietly_with_141(argv):
    """``... | head -1``: the reader has gone; no BrokenPipeError traceback, status 141."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = _run_python(f"from reports.cli.main import main\nraise SystemExit(main({argv!r}))",
                             stdout=write_end, stderr=subprocess.PIPE)
    finally:
        os.close(write_end)
    assert result.returncode == exit_codes.EXIT_BROKEN_PIPE, result.stderr
    assert result.stderr == ""


# --------------------------------------------------------------------------- --version, --help, README


def test_version_is_the_package_version(capsys):
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"backprop-parity {version}\n"


HELP_STATUSES = {None: {0, 1, 2, 3, 4, 130, 141}, "check": {0, 1, 2, 3, 130, 141},
                 "train": {0, 2, 3, 4, 130, 141}, "explain": {0, 1, 2, 130, 141}, "bench": {0, 2, 130, 141},
                 "report": {0, 1, 2, 130, 141}}


@pytest.mark.parametrize("command", HELP_STATUSES, ids=str)
def test_help_lists_the_exit_statuses(command, capsys):
    assert main(([command] if command else []) + ["--help"]) == 0
    out = capsys.readouterr().out
    assert "exit status:" in out
    listed = {int(code) for code in re.findall(r"^  (\d+) +\S", out.split("exit status:")[1], re.M)}
    assert listed == HELP_STATUSES[command]


def test_memory_error_past_the_size_check_is_one_error_line(monkeypatch, capsys):
    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(cli_train, "train", exhausted)
    one_error(capsys, main(["train", "--dataset", "xor"]), USAGE, r"^error: out of memory")


def test_the_docs_exit_status_section_matches_the_codes():
    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    section = page.split("## Exit status", 1)[1].split("\n#", 1)[0]
    listed = {int(code) for code in re.findall(r"^\| (\d+) +\|", section, re.M)}
    assert listed == set(exit_codes.STATUSES)


# --------------------------------------------------------------------------- --threads


@pytest.mark.parametrize("command", [["train", "--dataset", "xor", "--epochs", "1", "-q"],
                                     ["check", "--backends", "scratch,torch"],
                                     ["explain", "--layers", "4,3,2"]], ids=["train", "check", "explain"])
def test_negative_threads_is_a_usage_error(command, capsys):
    assert main([*command, "--threads", "-1"]) == exit_codes.EXIT_USAGE
    assert "--threads must be >= 0" in capsys.readouterr().err


@pytest.mark.parametrize("threads", [1, 0])
def test_train_runs_blas_with_the_requested_threads(threads, monkeypatch, capsys):
    """The default, one thread, is what the steps run under; 0 leaves the library's own pool."""
    from threadpoolctl import threadpool_info

    import reports.cli.train as cli_train

    seen = []
    original = cli_train.summary_lines

    def recording(*args, **kwargs):
        seen.extend(pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas")
        return original(*args, **kwargs)

    monkeypatch.setattr(cli_train, "summary_lines", recording)
    outside = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert main(["train", "--dataset", "xor", "--epochs", "1", "-q", "--threads", str(threads)]) == 0
    assert seen and set(seen) == ({1} if threads == 1 else set(outside))
