"""The study's inline-SVG line chart (:mod:`reports.study.chart`): well-formed, one polyline per
series with only its drawable points, text escaped, log ticks at powers of ten."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from reports.study.chart import (
    BOTTOM,
    HEIGHT,
    TOP,
    Series,
    finite_points,
    line_chart,
    linear_ticks,
    log_ticks,
)

SVG = "{http://www.w3.org/2000/svg}"


def polylines(markup: str) -> dict[str, list[tuple[float, float]]]:
    root = ET.fromstring(markup)
    return {line.get("data-series"): [tuple(map(float, point.split(",")))
                                      for point in line.get("points").split()]
            for line in root.iter(f"{SVG}polyline")}


def test_a_log_chart_draws_the_finite_positive_points_of_each_series():
    series = [Series("a <&> b", [(0, 1.0), (1, 10.0), (2, "inf"), (3, None)], "#000000"),
              Series("c", [(0, 100.0), (1, 0.0), (2, float("nan")), (3, 1000.0)], "#ff0000", dash="2 3")]
    markup = line_chart(series, title="t <x>", x_label="step & more", y_label="loss", log_y=True)
    lines = polylines(markup)
    assert list(lines) == ["a <&> b", "c"]
    assert len(lines["a <&> b"]) == 2 and len(lines["c"]) == 2      # inf, None, 0 (log), NaN left out
    (_, y_first), (_, y_ten) = lines["a <&> b"]
    assert y_ten < y_first                                             # larger values higher up
    assert "t &lt;x&gt;" in markup and "step &amp; more" in markup
    assert all(0 <= y <= HEIGHT for points in lines.values() for _, y in points)


def test_a_point_outside_a_fixed_range_is_drawn_at_the_edge():
    series = [Series("s", [(0, 1e-9), (1, 1e3)], "#000000")]
    markup = line_chart(series, title="t", x_label="x", y_label="y", log_y=True, y_range=(1e-3, 1.0))
    (_, low), (_, high) = polylines(markup)["s"]
    assert (low, high) == (HEIGHT - BOTTOM, TOP)


def test_ticks():
    assert log_ticks(2e-5, 0.7) == [1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    assert len(log_ticks(1e-30, 1e30)) <= 8
    assert linear_ticks(0, 128) == [0, 50, 100, 150]
    assert finite_points(Series("s", [(0, -1.0), (1, 2.0)], "#000"), log_y=False) == [(0.0, -1.0), (1.0, 2.0)]
