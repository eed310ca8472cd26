"""Peak memory of full-batch training steps, one backend per fresh process.

Run as ``python -m reports.bench.memory KIND SPEC_JSON`` (the grid point's spec: its batch size,
dtype and optimizer; parameters from its initializer): loads the batch and builds the step,
resets the kernel's high-water mark (``/proc/self/clear_refs`` ← 5), runs two steps and prints
JSON with the resident set before the steps and the peak during them (Linux only).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from reports.bench.grid import build_step
from scratch.spec import ModelSpec
from twins.hygiene import configure_frameworks


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def main(argv: list[str]) -> int:
    kind, spec_json = argv
    configure_frameworks()
    step = build_step(kind, ModelSpec.from_json(spec_json))
    step()
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    step()
    step()
    peak = _status_kib("VmHWM")
    print(json.dumps({"kind": kind, "rss_before_mib": before / 1024, "peak_mib": peak / 1024,
                      "step_extra_mib": (peak - before) / 1024}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
