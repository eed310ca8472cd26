"""The train → check flow (``docs/training.md``), over every optimizer and convention at its
defaults, both dtypes and several training lengths: ``backprop-parity train --dataset mnist …
--save m.safetensors``, then ``backprop-parity check --weights m.safetensors``. Prints one row per
run with check's exit status and summary line, and exits 1 if any check did not pass (the
suite's false-alarm test).

    python tools/readme_flows.py                              # epochs 1 2 5, every combination
    python tools/readme_flows.py --epochs 1 --optimizers adam --dtypes float32

Both commands run in this process through ``reports.cli.main.main`` (the frameworks are imported
once); the weight files go to a temporary folder.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reports.cli.main import main as cli  # noqa: E402


def run_one(folder: Path, optimizer: str, convention: str, dtype: str, epochs: int) -> dict:
    weights = folder / f"{optimizer}-{convention}-{dtype}-{epochs}.safetensors"
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()) as out:
        trained = cli(["train", "--dataset", "mnist", "--optimizer", optimizer, "--convention", convention,
                       "--dtype", dtype, "--epochs", str(epochs), "--save", str(weights), "--quiet"])
    if trained != 0:
        return {"train": trained, "check": None, "summary": out.getvalue().strip().splitlines()[-1:]}
    with contextlib.redirect_stdout(io.StringIO()) as out:
        checked = cli(["check", "--weights", str(weights)])
    lines = out.getvalue().strip().splitlines()
    summary = [line for line in lines if "within tolerance" in line or line.startswith("  ")
               and ("FAIL" in line or "parted" in line)]
    return {"train": 0, "check": checked, "summary": summary, "seconds": time.perf_counter() - started}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 2, 5])
    parser.add_argument("--optimizers", nargs="+", default=["sgd", "momentum", "rmsprop", "adam"])
    parser.add_argument("--conventions", nargs="+", default=["torch", "keras"])
    parser.add_argument("--dtypes", nargs="+", default=["float64", "float32"])
    args = parser.parse_args(argv)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="readme-flows-") as temp:
        for epochs in args.epochs:
            for dtype in args.dtypes:
                for optimizer in args.optimizers:
                    for convention in args.conventions:
                        result = run_one(Path(temp), optimizer, convention, dtype, epochs)
                        failures += result["check"] != 0
                        print(f"epochs {epochs} {dtype} {optimizer:<9}{convention:<6} "
                              f"train exit {result['train']} "
                              f"check exit {result['check']}  {result.get('seconds', 0):.0f} s", flush=True)
                        for line in result["summary"]:
                            print(f"    {line.strip()}", flush=True)
    print(f"{failures} check(s) did not pass")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
