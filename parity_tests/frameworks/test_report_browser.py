"""The HTML report in a real browser: headless Chromium (Debian's ``chromium`` package) opens
``report.html`` of a ``report --quick`` run from disk; the page must render with its verdict
line, every ``<img>`` must load (``complete`` and ``naturalWidth`` > 0, asked of the DevTools
runtime, not of a script in the page), nothing may widen the page past the window, and nothing
may be logged as an error (console errors, uncaught exceptions, failed resource loads). The
same harness must see a deleted plot as a broken image and a logged error, so the first test
cannot pass by seeing nothing.

Slow (a quick report, minutes on 2 cores); skipped where ``/usr/bin/chromium`` is missing. Run it
with ``tox -e browser``. Set ``REPORT_SCREENSHOT=path.png`` to keep the full-page screenshot.
"""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from headless_chromium import CHROMIUM, load_page  # noqa: E402

from reports.cli.main import main  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.deliberate_mismatch,       # the report runs the seed-faithful variants
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not installed "
                       "(Debian: apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    assert main(["report", "--quick", "--out", str(out)]) == 0
    return out


def png_width(data: bytes) -> int:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "a PNG"
    return struct.unpack(">I", data[16:20])[0]


def test_report_renders_in_chromium_with_every_image_and_no_error(report, tmp_path):
    visit = load_page(report / "report.html", "verdict", tmp_path)
    assert visit.errors == []
    assert visit.text.startswith("verdict: PASS — all "), visit.text
    sources = sorted(p.name for p in report.glob("*.png"))
    assert sorted(image["src"] for image in visit.images) == sources, "every plot is shown, none missing"
    broken = [image for image in visit.images if not (image["complete"] and image["naturalWidth"] > 0)]
    assert broken == []
    assert visit.widths["scroll"] <= visit.widths["client"], "nothing widens the page past the window"
    assert png_width(visit.screenshot) == visit.widths["client"]
    if os.environ.get("REPORT_SCREENSHOT"):
        Path(os.environ["REPORT_SCREENSHOT"]).write_bytes(visit.screenshot)


def test_the_harness_sees_a_missing_image(report, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(report, copy)
    (copy / "divergence-lenet5.png").unlink()
    visit = load_page(copy / "report.html", "verdict", tmp_path)
    assert [image["src"] for image in visit.images if image["naturalWidth"] == 0] == ["divergence-lenet5.png"]
    assert any("divergence-lenet5.png" in error for error in visit.errors), visit.errors
