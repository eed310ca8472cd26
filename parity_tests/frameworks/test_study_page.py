"""``backprop-parity study``: one self-contained HTML page per model whose every line comes from
the run — the engine statement quoted from the engine's source, each framework's node/op/equation
and its difference — checked in the file, against the page's own JSON, and in headless Chromium
(slow: the browser harness of ``test_report_browser``)."""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

import numpy as np
import pytest
from headless_chromium import CHROMIUM, load_page

from reports.cli.main import main
from reports.schema import HARD_TOPICS
from reports.study import hard_layers
from scratch import activations

pytest.importorskip("torch")
pytest.importorskip("tensorflow")
pytest.importorskip("jax")


pytestmark = pytest.mark.usefixtures("tiny_leaks")   # the page tests are about the model's step


def study(tmp_path, *flags) -> tuple[int, str, dict]:
    page, data = tmp_path / "study.html", tmp_path / "study.json"
    code = main(["study", "--layers", "5,4,3", "--batch", "4", "--out", str(page), "--json", str(data),
                 *flags])
    return code, page.read_text(encoding="utf-8"), json.loads(data.read_text(encoding="utf-8"))


def row_cells(html: str, name: str) -> list[str]:
    """The text of each cell of the intermediates table's row ``name``."""
    table = html[html.index('class="study-rows"'):]
    table = table[:table.index("</table>")]
    for row in re.findall(r"<tr>(.*?)</tr>", table, re.S):
        cells = [unescape(re.sub(r"<[^>]+>", "", cell))
                 for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        if cells and cells[0] == name:
            return cells
    raise AssertionError(f"no row {name}")


def test_the_page_is_self_contained_and_shows_the_runs_numbers(tmp_path, capsys):
    code, html, data = study(tmp_path)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "every one within tolerance" in out
    inline = html.replace('xmlns="http://www.w3.org/2000/svg"', "")   # a namespace name, not a fetch
    inline = re.sub(r"url\(#[\w-]+\)", "", inline)                     # the drawing's own markers
    for outside in ("http://", "https://", "<script", " src=", "url(", "@import", "<link"):
        assert outside not in inline, outside
    names = [row["name"] for row in data["rows"]]
    assert names[:4] == ["Z1", "A1", "Z2", "A2"] and "dW1" in names and "db1" in names
    for row in data["rows"]:
        cells = row_cells(html, row["name"])
        assert cells[1] == row["shape"] and cells[5] == row["scratch"] and cells[6] == row["math"]
        for framework, cell in zip(("torch", "keras", "jax"), cells[2:5], strict=True):
            word, absolute = row[f"{framework}_match"], row[f"{framework}_max_abs"]
            assert cell == (word if word == "exact" else f"{word} {absolute:.1e}"), (row["name"], framework)
    gradients = {row["name"] for row in data["rows"] if row["name"].startswith("d")}
    for framework, record in data["records"].items():
        marked = {name for line in record["lines"] if "  → " in line
                  for name in line.split("  → ")[1].split(", ")}
        assert marked == gradients, f"{framework}'s record marks every gradient of the rows, and only those"
    graph = html[html.index('<section id="study-graph-'):]
    graph = graph[:graph.index("</section>")]
    assert graph.count("<svg") == 1 and not data["graph"]["collapsed"], "a dense MLP: one drawing, every op"
    drawn = unescape(re.sub(r"<[^>]+>", " ", graph))
    for row in data["rows"]:
        assert row["name"] in drawn, f"the graph shows every intermediate of the rows: {row['name']}"


def test_a_changed_engine_formula_changes_its_line_and_a_wrong_one_is_marked(tmp_path, monkeypatch, capsys):
    class WhereReLU(activations.ReLU):
        def backward(self, z, a, da):
            return np.where(z > 0, da, 0.0 * da)

    monkeypatch.setitem(activations._REGISTRY, "relu", WhereReLU)
    code, html, _ = study(tmp_path)
    assert code == 0, capsys.readouterr().err
    assert row_cells(html, "dZ1")[5] == "return np.where(z > 0, da, 0.0 * da)"

    class IdentityReLU(activations.ReLU):              # a wrong derivative: g′ = 1 everywhere
        def backward(self, z, a, da):
            return da

    monkeypatch.setitem(activations._REGISTRY, "relu", IdentityReLU)
    code, html, data = study(tmp_path)
    assert code == 1
    assert "beyond the tolerance: dZ1" in capsys.readouterr().out
    cells = row_cells(html, "dZ1")
    assert cells[5] == "return da" and all(cell.startswith("✗ ") for cell in cells[2:5])
    assert next(row for row in data["rows"] if row["name"] == "dZ1")["ok"] is False


def test_the_hard_layers_section_comes_from_the_run_and_a_failed_check_exits_1(tmp_path, monkeypatch, capsys):
    code, html, data = study(tmp_path)
    assert code == 0, capsys.readouterr().err
    assert set(data["hard"]) - {"stack", "batch", "dtype"} == set(hard_layers.TOPICS) == set(HARD_TOPICS)
    text = unescape(re.sub(r"<[^>]+>", "", html))
    assert 'id="study-hard-default"' in html and data["hard"]["batch_norm"]["absent"].replace("`", "") in text
    assert all(entry["ok"] for entry in data["hard"]["softmax"]["checks"])

    separate = hard_layers._separate                  # the long way round, made wrong by a factor 2
    monkeypatch.setattr(hard_layers, "_separate", lambda *args: 2 * separate(*args))
    code, html, data = study(tmp_path)
    assert code == 1
    assert "beyond the tolerance: softmax: separate" in capsys.readouterr().out
    assert [entry["ok"] for entry in data["hard"]["softmax"]["checks"]] == [True, False]


def test_bad_input_is_one_line_before_any_work(tmp_path, capsys):
    assert main(["study", "--batch", "0", "--out", str(tmp_path / "s.html")]) == 2
    _, err = capsys.readouterr()
    assert err.startswith("error: ") and "--batch" in err and err.count("\n") == 1
    assert not (tmp_path / "s.html").exists()


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not installed")
def test_the_page_renders_in_chromium_without_an_error(tmp_path):
    code, _, _ = study(tmp_path)
    assert code == 0
    visit = load_page(tmp_path / "study.html", "study-rows-default", tmp_path)
    assert visit.errors == []
    assert "One line per intermediate" in visit.text
    assert visit.widths["scroll"] <= visit.widths["client"], "nothing widens the page past the window"
