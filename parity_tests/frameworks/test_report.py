"""The report: a ``--quick`` report generated in a temporary folder, then checked as a reader
would meet it — the HTML parses with balanced tags, every image it shows is a real PNG file
beside it, the JSON follows the documented schema, the Markdown tables carry the JSON's numbers,
and re-rendering from the JSON gives the same files; each catalog model of the profile (the one
default, mnist-default, in its model slot; lenet5 as its convolutional row) gets its own sections.
The same holds for the Benchmark section that ``--bench`` adds from a real (tiny)
``backprop-parity bench --json`` run, and a bad bench file is one clear error before anything runs.

Marked slow (CI runs it with ``-m slow``): the ``--quick`` report is generated once per module, and
that alone would exceed what the default suite may take (issue 12: ≤ 90 s).
`test_report_browser.py` opens the same kind of report in Chromium, also under ``-m slow``."""

from __future__ import annotations

import copy
import json
import math
import re
import struct
from html.parser import HTMLParser

import pytest

pytest.importorskip("matplotlib")

from reports.cli.main import main  # noqa: E402
from reports.schema import validate  # noqa: E402
from scratch.errors import DataError  # noqa: E402

# The report runs the seed-faithful variants, which disagree with the twins by design.
pytestmark = [pytest.mark.deliberate_mismatch, pytest.mark.slow]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
VOID_TAGS = {"meta", "img", "br", "hr", "link", "input", "col", "wbr", "source", "area", "base"}
MODELS = ("mnist-default", "lenet5")     # the --quick profile's rows: its model slot, then the CNN
SECTIONS = ["overview", *(f"{scenario}-{model}" for scenario in ("parity", "curves", "divergence")
                          for model in MODELS),
            "seeds", "variants", "conventions", "findings-lenet5", "environment",
            *(f"study-{part}-mnist-default" for part in ("rows", "graph", "hard", "records", "leaks"))]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    assert main(["report", "--quick", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def results(report):
    return json.loads((report / "results.json").read_text())


class StructureParser(HTMLParser):
    """Checks that every tag closes in order and collects ids, image sources and table shapes."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.ids, self.images, self.tags = [], [], [], [], []
        self.tables = []                     # per table: list of rows, each a list of cell tags

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        inside_svg = any(open_tag == "svg" for open_tag, _ in self.stack)
        self.tags.append(f"svg:{tag}" if inside_svg else tag)     # an SVG drawing's own <title>
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "img":
            self.images.append(attrs.get("src"))
            assert attrs.get("alt"), "every image has alt text"
        if tag == "table":
            self.tables.append([])
        if tag == "tr":
            self.tables[-1].append([])
        if tag in ("td", "th"):
            self.tables[-1][-1].append(tag)
        if tag not in VOID_TAGS:
            self.stack.append((tag, self.getpos()))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID_TAGS:
            self.stack.pop()

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1][0] != tag:
            open_tag = self.stack[-1] if self.stack else "nothing"
            self.errors.append(f"</{tag}> at {self.getpos()} closes {open_tag}")
            return
        self.stack.pop()


def parse_html(path) -> StructureParser:
    parser = StructureParser()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser


def test_html_parses_with_balanced_tags_and_every_section(report):
    text = (report / "report.html").read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    parser = parse_html(report / "report.html")
    assert not parser.errors, parser.errors
    assert not parser.stack, f"unclosed tags: {parser.stack}"
    for tag in ("html", "head", "title", "body", "h1"):
        assert parser.tags.count(tag) == 1, tag
    assert re.findall(r'<section id="([^"]+)">', text) == SECTIONS, "every section, in report order"
    assert set(SECTIONS) <= set(parser.ids)
    assert len(parser.ids) == len(set(parser.ids)), "ids are unique"
    assert parser.tables
    for table in parser.tables:
        header, *rows = table
        assert set(header) == {"th"} and rows
        assert all(len(row) == len(header) for row in rows), "every row has one cell per column"
    inline = text.replace('xmlns="http://www.w3.org/2000/svg"', "")   # a namespace name, not a fetch
    assert "<script" not in inline and "http://" not in inline and "https://" not in inline, "self-contained"


def png_size(path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path.name}: not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (length, kind) == (13, b"IHDR"), f"{path.name}: first chunk is not IHDR"
    return struct.unpack(">II", data[16:24])


def test_every_image_exists_and_is_a_png(report):
    html_images = parse_html(report / "report.html").images
    md_images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (report / "report.md").read_text())
    assert html_images and sorted(html_images) == sorted(md_images)
    for source in html_images:
        assert "/" not in source and not source.startswith("data:"), "images sit beside the report"
        width, height = png_size(report / source)
        assert width > 100 and height > 100
    assert {"conventions.png", "curves-mnist-default-sgd.png", "curves-mnist-default-adam.png",
            "curves-lenet5-adam.png", *(f"{plot}-{model}.png" for plot in ("parity_errors", "divergence")
                                        for model in MODELS)} <= set(html_images)


def test_json_follows_the_schema(results):
    validate(results)
    assert results["mode"] == "quick"
    broken = copy.deepcopy(results)
    assert [entry["model"] for entry in results["parity"]] == list(MODELS)
    assert [(row["scenario"], row["model"]) for row in results["rows"]][:3] == [
        ("parity", "mnist-default"), ("curves", "mnist-default"), ("divergence", "mnist-default")]
    broken["parity"][1]["rows"][3]["rel_error"] = "small"
    with pytest.raises(DataError, match=r"parity\[1\]\.rows\[3\]\.rel_error: expected a number or null"):
        validate(broken)
    broken = copy.deepcopy(results)
    broken["cnn"] = {}                                  # format 1's separate section
    with pytest.raises(DataError, match="unknown key 'cnn'"):
        validate(broken)
    broken = dict(copy.deepcopy(results), parity=results["parity"][0])      # format 1: one object
    with pytest.raises(DataError, match="parity: expected a list, got dict"):
        validate(broken)
    broken = copy.deepcopy(results)
    del broken["seeds"]
    with pytest.raises(DataError, match="missing key 'seeds'"):
        validate(broken)


def test_scenarios_say_what_they_found(results):
    for entry in results["parity"]:
        assert entry["rows"] and all(row["ok"] for row in entry["rows"]), entry["model"]
    for entry in results["curves"]:
        assert entry["checks"] and all(check["ok"] for check in entry["checks"]), entry["model"]
    assert all(row["reduced"] for row in results["seeds"]["rows"]), "--quick never claims the seeds' setting"
    assert all(row["setting"].startswith("REDUCED") for row in results["seeds"]["rows"])
    variants = results["variants"]["rows"]
    assert variants and all(row["detected"] for row in variants)
    bias = [row for row in variants if row["variant"] == "seed001_bias_scalar"]
    assert bias and all(re.search(r"layer \d, db\d", row["located"]) for row in bias)
    adam = [row for row in variants if row["variant"] == "seed003_adam_no_sqrt"]
    assert adam and all("at step 1" in row["located"] for row in adam)


def md_tables(text: str) -> list[tuple[str | None, list[str], list[list[str]]]]:
    """Every pipe table of a Markdown text: (bold caption just above it, header, rows)."""
    def cells(line):
        return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]

    lines, tables, caption, i = text.splitlines(), [], None, 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("| ") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            header, rows, i = cells(line), [], i + 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(cells(lines[i]))
                i += 1
            tables.append((caption, header, rows))
            caption = None
            continue
        if line.startswith("**") and line.endswith("**"):
            caption = line.strip("*")
        elif line.strip():
            caption = None
        i += 1
    return tables


def as_number(cell: str):
    if cell == "n/a":
        return None
    return float(cell.removesuffix(" %")) / 100 if cell.endswith(" %") else float(cell)


def test_markdown_tables_carry_the_json_numbers(report, results):
    tables = md_tables((report / "report.md").read_text())
    parity = {(e["model"], r["dtype"], r["pair"], r["quantity"]): r
              for e in results["parity"] for r in e["rows"]}
    checked = 0
    for caption, header, rows in tables:
        table = re.fullmatch(r"([\w-]+), (float64|float32)", caption or "")
        if not table:
            continue
        for row in rows:
            for column, cell in zip(header, row, strict=True):
                match = re.fullmatch(r"(.+) max (abs|rel)", column)
                if match:
                    want = parity[(table[1], table[2], match[1], row[0])][f"{match[2]}_error"]
                    got = as_number(cell)
                    assert (got is None) == (want is None)
                    assert got == pytest.approx(want, rel=5e-3, abs=0), (caption, row[0], column)
                    checked += 1
    assert checked == 2 * len(parity) and {key[0] for key in parity} == set(MODELS)
    seeds = next(rows for _, header, rows in tables if header[:2] == ["experiment", "seed's claim"])
    assert len(seeds) == len(results["seeds"]["rows"])
    for row, want in zip(seeds, results["seeds"]["rows"], strict=True):
        assert row[0] == want["experiment"]
        for index, key in enumerate(("claim", "scratch", "torch", "keras", "jax"), start=1):
            if want.get(key) is None:
                assert as_number(row[index]) is None, (row, key)
            else:
                assert as_number(row[index]) == pytest.approx(want[key], abs=5e-5)
        assert as_number(row[6]) == pytest.approx(want["spread_pp"], abs=5e-3)


def test_from_json_rerenders_the_same_report(report, results, tmp_path, capsys):
    assert main(["report", "--from-json", str(report / "results.json"), "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == results["verdict"]["line"], "the verdict, last"
    for name in ("report.html", "report.md", "results.json"):
        assert (tmp_path / name).read_bytes() == (report / name).read_bytes(), name
    pngs = sorted(p.name for p in report.glob("*.png"))
    assert pngs and sorted(p.name for p in tmp_path.glob("*.png")) == pngs
    for name in pngs:
        assert (tmp_path / name).read_bytes() == (report / name).read_bytes(), f"{name} is deterministic"
    assert not list(tmp_path.glob(".*.tmp")), "no temporary files left behind"


def test_the_study_section_is_the_study_pages_blocks(results):
    from reports.render.html import render_block, render_html
    from reports.render.markdown import render_markdown
    from reports.study.sections import study_sections

    assert [entry["model"] for entry in results["explain"]] == ["mnist-default"]
    entry = results["explain"][0]
    assert entry["rows"] and entry["graph"]["nodes"] and set(entry["records"]) == {"torch", "keras", "jax"}
    html_text = render_html(results, {})
    for section in study_sections(entry):
        for block in section.blocks:
            assert render_block(block) in html_text, (section.id, str(block)[:80])
    assert "table.study-rows, table.study-records { display: block; overflow-x: auto; }" in html_text, \
        "the wide study tables scroll instead of widening the page (test_report_browser.py)"
    markdown = render_markdown(results, {})
    assert "One line per intermediate: mnist-default" in markdown and "The step's graph, every op" in markdown
    broken = dict(results, explain=[dict(entry, graph={**entry["graph"], "nodes": "none"})])
    with pytest.raises(DataError, match=r"explain\[0\]\.graph\.nodes: expected a list"):
        validate(broken)


def test_bad_input_is_one_clear_error(tmp_path, capsys):
    bad = tmp_path / "saved.json"
    bad.write_text('{"format": "backprop-parity-report/2"}')
    assert main(["report", "--from-json", str(bad), "--out", str(tmp_path / "out")]) == 2
    assert f"error: {bad}: (top level): missing key 'mode'" in capsys.readouterr().err, "names the file"
    assert not (tmp_path / "out").exists(), "nothing is written on error"
    bad.write_text('{"format": "backprop-parity-report/1", "cnn": {}}')       # before the models were rows
    assert main(["report", "--from-json", str(bad), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (f"error: {bad}: format: expected one of 'backprop-parity-report/2', "
                                       "got 'backprop-parity-report/1'\n")
    assert not (tmp_path / "out").exists(), "nothing is written on error"
    assert main(["report", "--quick", "--full"]) == 2


# --- the verdict first, coloured status cells, the heat map, failing cells ----------------------

def judged_count(results: dict, model: str | None = None) -> int:
    """Parity rows, plus per training check its worst per-step forward quantity, gradient and
    update (where there are steps) and its free-running trajectory — as ``check`` counts them;
    over every model's parity and curves entries (``model``: only that one's)."""
    parity = [row for e in results["parity"] if model in (None, e["model"]) for row in e["rows"]]
    checks = [c for e in results["curves"] if model in (None, e["model"]) for c in e["checks"]]
    kinds = ("forward", "gradient", "update")
    steps = sum((c[f"step_{kind}"] is not None) for c in checks for kind in kinds)
    return len(parity) + steps + len(checks)


def test_the_verdict_opens_the_report_and_is_stored(report, results):
    from reports.verdict.report import model_verdict, report_verdict

    verdict = results["verdict"]
    assert verdict == report_verdict(results), "stored as computed from the rows"
    n, variants = judged_count(results), len(results["variants"]["rows"])
    assert (verdict["ok"], verdict["comparisons"], verdict["failed"], verdict["failures"]) == (True, n, 0, [])
    assert verdict["line"].startswith(f"verdict: PASS — all {n} comparisons within tolerance "
                                      "(mnist-default, lenet5; float64, float32; ")
    assert sum(judged_count(results, model) for model in MODELS) == n
    for model in MODELS:
        count = judged_count(results, model)
        line = model_verdict(results, model)["line"]
        assert line == f"{model}: PASS — all {count} comparisons within tolerance"
    assert f"all {variants} were caught" in verdict["line"], "the variants are named, not counted"
    html_text = (report / "report.html").read_text(encoding="utf-8")
    title_at = html_text.index("<h1>")
    assert re.search(r"</h1>\n<p id=\"verdict\" class=\"verdict pass\">verdict: PASS — all \d+ comparisons",
                     html_text[title_at:]), "the verdict comes right under the title"
    assert (report / "report.md").read_text().splitlines()[:3] == ["# backprop-parity report", "",
                                                                    f"**{verdict['line']}**"]
    broken = copy.deepcopy(results)
    broken["verdict"]["comparisons"] += 1
    with pytest.raises(DataError, match=rf"verdict.comparisons is {n + 1}, but .* give {n}"):
        validate(broken)


def test_status_cells_are_coloured_by_class(report, results):
    html_text = (report / "report.html").read_text(encoding="utf-8")
    parity_lines = len({(e["model"], r["dtype"], r["quantity"])
                        for e in results["parity"] for r in e["rows"]})
    hard_checks = sum(len(topic.get("checks", [])) for e in results["explain"] for topic in e["hard"].values()
                      if isinstance(topic, dict))
    statuses = parity_lines + sum(len(e["checks"]) for e in results["curves"]) + hard_checks
    assert html_text.count('<td class="ok">ok</td>') == statuses
    assert html_text.count('<td class="ok">yes</td>') == len(results["variants"]["rows"])
    assert "td.ok {" in html_text and "td.fail {" in html_text and "td.neutral {" in html_text
    assert 'class="fail"' not in html_text, "nothing failed in the quick report"


def heat_cells(html_text: str, model: str, dtype: str, pair: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(layer, quantity) → (cell class, text) of one model's heat-map table."""
    table = re.search(rf'<table id="table-heat-{model}-{dtype}-{pair.replace(" ", "-")}" class="heat">'
                      r'(.*?)</table>', html_text, re.S)[1]
    header = re.findall(r"<th>(.*?)</th>", table)
    cells = {}
    for row in re.findall(r"<tr>(.*?)</tr>", table)[1:]:
        found = re.findall(r'<td(?: class="([^"]*)")?>(.*?)</td>', row)
        for column, (css, text) in zip(header[1:], found[1:], strict=True):
            if text:
                cells[(found[0][1], column)] = (css, text)
    return cells


def test_heat_map_has_one_cell_per_parity_row_in_eps_units(report, results):
    html_text = (report / "report.html").read_text(encoding="utf-8")
    rows = [dict(r, model=e["model"]) for e in results["parity"] for r in e["rows"]]
    # an element index: one per axis of the quantity (2 for a dense layer's, 4 for a conv map's)
    assert all(isinstance(r["max_ulps"], float) and len(r["where"]) in (0, 1, 2, 4) for r in rows)
    assert any(len(r["where"]) == 4 for r in rows if r["model"] == "lenet5")
    eps = {"float64": 2.0 ** -52, "float32": 2.0 ** -23}
    seen = 0
    for entry, dtype in ((e, d) for e in results["parity"] for d in ("float64", "float32")):
        for pair in entry["pairs"]:
            cells = heat_cells(html_text, entry["model"], dtype, pair)
            these = [r for r in rows if (r["model"], r["dtype"], r["pair"]) == (entry["model"], dtype, pair)]
            assert len(cells) == len(these)
            for r in these:
                css, text = cells[("—" if r["layer"] is None else str(r["layer"]),
                                   re.sub(r"\d+$", "", r["quantity"]))]
                units = r["rel_error"] / eps[dtype]
                assert float(text) == pytest.approx(units, rel=5e-3, abs=0)
                decade = 0 if units == 0 else min(6, max(1, math.ceil(math.log10(units)) + 1))
                assert css == f"heat-{decade}", (dtype, pair, r["quantity"], units)
                seen += 1
    assert seen == len(rows)


def with_failures(results: dict) -> dict:
    """The quick results with two parity rows and one per-step update pushed over their bounds."""
    broken = copy.deepcopy(results)
    for row in broken["parity"][0]["rows"]:                         # mnist-default's
        if (row["dtype"], row["pair"], row["quantity"]) == ("float32", "torch vs scratch", "dW2"):
            row.update(rel_error=3.7e-4, ok=False)                  # 3.7× its bound 1e-4
        if (row["dtype"], row["pair"], row["quantity"]) == ("float64", "keras vs torch", "Z1"):
            row.update(rel_error=2.0e-13, ok=False)                 # 2× its bound 1e-13
    check = next(c for c in broken["curves"][0]["checks"]
                 if (c["config"], c["pair"]) == ("sgd", "torch vs scratch"))
    check["step_update"].update(error=13.2, ok=False)               # 13.2 ulp, 1.65× its bound 8
    check.update(steps_ok=False, ok=False)
    return broken


def test_failing_cells_give_the_passing_tolerance_and_the_command(results):
    from reports.render.html import render_html
    from reports.render.markdown import render_markdown
    from reports.verdict.report import model_verdict, report_verdict

    broken = with_failures(results)
    with pytest.raises(DataError, match="verdict.ok is True, but the parity rows and training checks give "
                                        "False"):
        validate(broken)
    broken["verdict"] = report_verdict(broken)
    validate(broken)
    n = judged_count(results)
    line = broken["verdict"]["line"]
    assert line.startswith(
        f"verdict: FAIL — 3 of {n} comparisons exceed tolerance (mnist-default, lenet5; float64, float32; "
        "torch vs scratch, keras vs scratch, jax vs scratch, keras vs torch, jax vs torch): mnist-default "
        "float32 torch vs scratch layer 2 dW2 (rel err 3.70e-04, 3.7× the bound 1e-04); mnist-default "
        "float64 keras vs torch layer 1 Z1 (rel err 2.00e-13, 2× the bound 1e-13); mnist-default float64 "
        "sgd torch vs scratch per-step update W1 update at step 0 (13 ulp, 1.65× the bound 8 ulp)."), line
    assert model_verdict(broken, "mnist-default")["failed"] == 3 and model_verdict(broken, "lenet5")["ok"]
    html_text = render_html(broken, {})
    assert f'<p id="verdict" class="verdict fail">{line}</p>' in html_text
    assert '<td class="fail">FAIL: torch vs scratch (passes at 3.700e-04)</td>' in html_text
    assert '<td class="fail">FAIL: keras vs torch (passes at 2.000e-13)</td>' in html_text
    assert '<td class="fail">FAIL: update passes at 14 ulp</td>' in html_text
    command = results["command"]
    assert command.startswith("backprop-parity report")
    # the two parity status cells, the check's, and the first cell of each of the 3 failing tables' rows
    assert html_text.count('<td class="fail">') == 6
    failing = re.search(r'<table id="table-parity-failures-mnist-default">(.*?)</table>', html_text,
                        re.S)[1]
    assert failing.count(f"<td>{command}</td>") == 2 and "<td>3.700e-04</td>" in failing
    curve_failing = re.search(r'<table id="table-curve-failures-mnist-default">(.*?)</table>', html_text,
                              re.S)[1]
    assert "table-parity-failures-lenet5" not in html_text and "table-curve-failures-lenet5" not in html_text
    assert f"<td>{command}</td>" in curve_failing and "<td>14 ulp</td>" in curve_failing
    css, text = heat_cells(html_text, "mnist-default", "float32", "torch vs scratch")[("2", "dW")]
    assert (css, text) == ("heat-5 fail", f"{3.7e-4 / 2.0 ** -23:.3g} FAIL")
    markdown = render_markdown(broken, {})
    assert markdown.splitlines()[2] == f"**{line}**"
    tables = {caption: (header, rows) for caption, header, rows in md_tables(markdown)}
    header, rows = tables["failing parity comparisons, mnist-default"]
    assert header == ["comparison", "by how much", "smallest tolerance that passes", "reproduce"]
    assert ["mnist-default float32 torch vs scratch layer 2 dW2", "(rel err 3.70e-04, 3.7× the bound 1e-04)",
            "3.700e-04",
            command] in rows
    assert tables["failing training checks, mnist-default"][1] == [[
        "mnist-default float64 sgd torch vs scratch per-step update W1 update at step 0",
        "(13 ulp, 1.65× the bound 8 ulp)",
        "14 ulp", command]]


def test_a_planted_fail_prints_the_verdict_and_exits_1(results, tmp_path, capsys):
    """`report` is what CI runs (`tox -e report`): a failing comparison is seen on the terminal and
    in the exit status, not only inside the HTML."""
    import json

    from reports.verdict.report import report_verdict

    broken = with_failures(results)
    broken["verdict"] = report_verdict(broken)
    saved = tmp_path / "failing.json"
    saved.write_text(json.dumps(broken), encoding="utf-8")
    out = tmp_path / "out"
    assert main(["report", "--from-json", str(saved), "--out", str(out)]) == 1
    last = capsys.readouterr().out.splitlines()[-1]
    assert last == broken["verdict"]["line"] and last.startswith("verdict: FAIL — 3 of ")
    assert 'class="verdict fail"' in (out / "report.html").read_text(encoding="utf-8"), "still written"


def test_verdict_says_when_a_variant_was_not_caught(results):
    from reports.verdict.report import report_verdict

    missed = copy.deepcopy(results)
    missed["variants"]["rows"][0]["detected"] = False
    n = len(results["variants"]["rows"])
    assert f"only {n - 1} of {n} were caught." in report_verdict(missed)["line"]


def test_lenet5_is_a_row_of_each_model_scenario_with_every_twin_and_its_plots(report, results):
    """The convolutional model runs through the general scenarios (not a copy of them): every
    backend pair's parity in both dtypes, each Adam convention in every twin that expresses it,
    its divergence, its convention findings, and its own sections, tables, plots and verdict."""
    from reports.scenarios.curves import OPTIMIZERS
    from twins.backends import PAIRS, twins_for

    used = results["backends"]["used"]
    entries = {scenario: next(e for e in results[scenario] if e["model"] == "lenet5")
               for scenario in ("parity", "curves", "divergence", "findings")}
    pairs = [f"{a} vs {d}" for a, d in PAIRS if a in used and d in used]
    assert entries["parity"]["pairs"] == pairs
    assert {(r["dtype"], r["pair"]) for r in entries["parity"]["rows"]} == {
        (dtype, pair) for dtype in ("float32", "float64") for pair in pairs}
    curves = entries["curves"]
    want = set()
    for config in ("adam-torch", "adam-keras"):
        ran = ["scratch", *(t for t in twins_for("adam", OPTIMIZERS[config].convention) if t in used)]
        want |= {(dtype, config, f"{a} vs {d}") for dtype in ("float32", "float64") for a, d in PAIRS
                 if a in ran and d in ran}
    assert {(c["dtype"], c["config"], c["pair"]) for c in curves["checks"]} == want
    assert len(curves["checks"]) == len(want) and all(c["ok"] for c in curves["checks"])
    assert {s["dtype"] for s in entries["divergence"]["summary"]} == {"float32", "float64"}
    assert {row["finding"] for row in entries["findings"]["rows"]} == {"padding", "flatten", "batchnorm",
                                                                       "kernel layout"}
    ids = set(parse_html(report / "report.html").ids)
    assert {"parity-lenet5", "curves-lenet5", "divergence-lenet5", "findings-lenet5",
            "table-parity-lenet5-float32", "table-parity-lenet5-float64", "table-curve-checks-lenet5",
            "table-divergence-lenet5", "table-lenet5-finding-padding", "table-lenet5-finding-flatten",
            "table-lenet5-finding-batchnorm", "table-lenet5-finding-kernel-layout"} <= ids
    markdown = (report / "report.md").read_text()
    assert "## 1. Forward and gradient parity: lenet5" in markdown
    assert "## 5b. Convolutional conventions, measured on lenet5" in markdown
    assert "](curves-lenet5-adam.png)" in markdown and "](parity_errors-lenet5.png)" in markdown
    assert "Model verdict: lenet5: PASS — all " in markdown
    # one checks table and one divergence table per model, in report order, carrying its entry
    checks = [rows for _, header, rows in md_tables(markdown) if header[:3] == ["optimizer", "dtype", "pair"]]
    assert len(checks) == len(results["curves"])
    for rows, entry in zip(checks, results["curves"], strict=True):
        assert [[c["config"], c["dtype"], c["pair"], "ok"] for c in entry["checks"]] == [
            [row[0], row[1], row[2], row[-1]] for row in rows]
    summaries = [rows for _, header, rows in md_tables(markdown)
                 if header[:3] == ["pair", "dtype", "‖Δθ‖/‖θ‖ step 1"]]
    assert len(summaries) == len(results["divergence"])
    for rows, entry in zip(summaries, results["divergence"], strict=True):
        assert [row[:2] for row in rows] == [[s["pair"], s["dtype"]] for s in entry["summary"]]
        for row, s in zip(rows, entry["summary"], strict=True):
            assert as_number(row[4]) == pytest.approx(s["param_rel_diff"]["max"], rel=5e-3, abs=0)
            assert as_number(row[7]) == pytest.approx(s["loss_abs_diff"]["max"], rel=5e-3, abs=0)
    for png in ("curves-lenet5-adam.png", "parity_errors-lenet5.png", "divergence-lenet5.png"):
        width, height = png_size(report / png)
        assert width > 300 and height > 200, png


# --- report --bench: the benchmark section -------------------------------------------------------

BENCH_TABLE = "benchmark, mnist-default, float32: ms per step (median)"


def stand_in_bench(model: str, batches=(64, 256)) -> dict:
    """A bench file of ``model`` with stand-in timings (the real run is ``bench_run``'s; a second
    real one would cost a minute): scratch 6 ms, torch 4 ms per step, the engine's profile."""
    from scratch import catalog

    def timing(median_s, ratio_to_scratch, ratio_to_fastest):
        return {"median_s": median_s, "q1_s": 0.9 * median_s, "q3_s": 1.1 * median_s,
                "ratio_to_scratch": ratio_to_scratch, "ratio_to_fastest": ratio_to_fastest,
                "gflops": 1.0, "percent_of_peak": 2.0}

    return {"format": "backprop-parity-bench/2", "threads": 1, "settle_s": 0.0,
            "frameworks": {"torch": "threads 1"}, "blas": [], "peak_gflops": {"float32": {"numpy": 50.0}},
            "specs": {model: catalog.spec(model).to_dict()},
            "rows": [{"model": model, "batch": batch, "dtype": "float32", "optimizer": "sgd",
                      "flops": 10 ** 6,
                      "backends": {"scratch": timing(0.006, 1.0, 1.5), "torch": timing(0.004, 2 / 3, 1.0)},
                      "profile": {"engine_profile_s": {"conv1 im2col": 0.0015, "step": 0.006}, "im2col": [],
                                  "engine_step_tracemalloc_peak_bytes": 1}} for batch in batches]}


@pytest.fixture(scope="module")
def bench_file(bench_run):
    """A real bench file: ``backprop-parity bench`` itself on the smallest grid (see ``bench_run``)."""
    return bench_run[0]


@pytest.fixture(scope="module")
def bench(bench_file):
    return json.loads(bench_file.read_text())


@pytest.fixture(scope="module")
def bench_report(tmp_path_factory, report, bench_file):
    """The ``--quick`` report re-rendered with ``--bench``."""
    out = tmp_path_factory.mktemp("bench_report")
    assert main(["report", "--from-json", str(report / "results.json"), "--bench", str(bench_file),
                 "--out", str(out)]) == 0
    return out


def without_section(markdown: str, title: str) -> str:
    """``markdown`` less the section headed ``## title…`` (up to the next ``## `` heading)."""
    return re.sub(rf"## {re.escape(title)}.*?(?=^## |\Z)", "", markdown, flags=re.S | re.M)


def test_bench_section_appears_in_html_and_markdown_with_its_plot(report, bench_report, bench):
    parser = parse_html(bench_report / "report.html")
    assert not parser.errors and not parser.stack
    assert {"bench", "table-bench-peak-mnist-default", "table-bench-mnist-default-float32",
            "table-bench-frameworks-mnist-default"} <= set(parser.ids)
    assert len(parser.ids) == len(set(parser.ids)), "ids are unique"
    assert "bench-mnist-default.png" in parser.images
    markdown = (bench_report / "report.md").read_text()
    assert "## 7. Benchmark" in markdown and "![" in markdown and "](bench-mnist-default.png)" in markdown
    width, height = png_size(bench_report / "bench-mnist-default.png")
    assert width > 300 and height > 200
    assert bench_report.joinpath("results.json").read_text().count('"bench"') == 1
    # stored unchanged; with test_from_json_rerenders_the_same_report (rendering is a function of
    # results.json alone) this is what makes --from-json give the bench section back identically
    assert json.loads((bench_report / "results.json").read_text())["bench"] == [bench]


def test_without_bench_the_report_is_unchanged(report, bench_report):
    plain = (report / "report.md").read_text()
    assert "Benchmark" not in plain and not list(report.glob("bench*.png"))
    assert 'id="bench"' not in (report / "report.html").read_text()
    assert without_section((bench_report / "report.md").read_text(), "7. Benchmark") == plain
    for png in report.glob("*.png"):
        assert (bench_report / png.name).read_bytes() == png.read_bytes(), png.name


def test_bench_files_of_any_model_render_alike_in_one_section(report, bench_file, tmp_path):
    """``--bench`` twice: the default model's file and a lenet5 one (stand-in timings; the real run
    is ``test_bench.py``'s) — one list in results.json, the same tables for both, a plot each."""
    cnn_file = tmp_path / "cnn.json"
    cnn_bench = stand_in_bench("lenet5")
    cnn_file.write_text(json.dumps(cnn_bench))
    out = tmp_path / "out"
    assert main(["report", "--from-json", str(report / "results.json"), "--bench", str(bench_file),
                 "--bench", str(cnn_file), "--out", str(out)]) == 0
    stored = json.loads((out / "results.json").read_text())
    assert [list(bench["specs"]) for bench in stored["bench"]] == [["mnist-default"], ["lenet5"]]
    assert stored["bench"][1] == cnn_bench
    tables = {caption: (header, rows) for caption, header, rows in md_tables((out / "report.md").read_text())}
    header, rows = tables["benchmark, lenet5, float32: ms per step (median)"]
    assert header == ["optimizer", "batch", "scratch ms", "torch ms", "torch × scratch", "fastest",
                      "scratch × fastest", "scratch GFLOP/s", "scratch % of GEMM peak"]
    assert rows == [["sgd", str(batch), "6.000", "4.000", "0.67", "torch", "1.50", "1.0", "2.0"]
                    for batch in (64, 256)]
    assert tables["where the engine's lenet5 step goes"][1] == [
        ["conv1 im2col", "1.500 (25.0 %)", "1.500 (25.0 %)"], ["step", "6.000 (100.0 %)", "6.000 (100.0 %)"]]
    assert BENCH_TABLE in tables, "the default model's rows are still there"
    parser = parse_html(out / "report.html")
    assert {"table-bench-lenet5-float32", "table-bench-profile-lenet5", "table-bench-mnist-default-float32"} \
        <= set(parser.ids) and len(parser.ids) == len(set(parser.ids))
    assert {"bench-lenet5.png", "bench-mnist-default.png"} <= set(parser.images)
    assert png_size(out / "bench-lenet5.png")[0] > 300
    twice = tmp_path / "twice"
    assert main(["report", "--from-json", str(report / "results.json"), "--bench", str(cnn_file),
                 "--bench", str(cnn_file), "--out", str(twice)]) == 2
    assert not twice.exists(), "two files of one model: refused before anything is written"


def test_a_results_json_with_an_old_bench_shape_is_refused(results):
    """A results.json that stored a bench file of the shapes before format 2 (``bench`` one
    object, ``bench_cnn``) is one error that says to re-run ``bench``."""
    for old in ({"bench": {"layers": [784, 10], "grid": []}}, {"bench_cnn": {"cnn": []}}):
        with pytest.raises(DataError, match=r"results\.json: its benchmark is in the shape written before "
                                            r"backprop-parity-bench/2; re-run `backprop-parity bench"):
            validate(dict(results, **old))
    with pytest.raises(DataError, match="bench: two bench files time model 'lenet5'"):
        validate(dict(results, bench=[stand_in_bench("lenet5"), stand_in_bench("lenet5", (8,))]))
    validate(dict(results, bench=[stand_in_bench("lenet5")]))


def test_bench_markdown_carries_the_bench_json_numbers(bench_report, bench):
    tables = md_tables((bench_report / "report.md").read_text())
    (_, peak_header, peak_rows), = [t for t in tables if t[0] and t[0].startswith("GEMM peak")]
    for row in peak_rows:
        for library, cell in zip(peak_header[1:], row[1:], strict=True):
            assert float(cell) == pytest.approx(bench["peak_gflops"][row[0]][library], abs=0.05 + 1e-9)
    (_, header, rows), = [t for t in tables if t[0] == BENCH_TABLE]
    grid = {(r["optimizer"], str(r["batch"])): r for r in bench["rows"] if r["dtype"] == "float32"}
    assert len(rows) == len(grid)
    checked = 0
    for row in rows:
        timings = grid[(row[0], row[1])]["backends"]
        for column, cell in zip(header[2:], row[2:], strict=True):
            if column.endswith(" ms"):
                want, places = 1e3 * timings[column.removesuffix(" ms")]["median_s"], 3
            elif column.endswith(" × scratch"):
                want, places = timings[column.removesuffix(" × scratch")]["ratio_to_scratch"], 2
            elif column == "fastest":
                assert cell == min(timings, key=lambda name: timings[name]["median_s"])
                checked += 1
                continue
            elif column == "scratch × fastest":
                want, places = timings["scratch"]["ratio_to_fastest"], 2
            elif column == "scratch GFLOP/s":
                want, places = timings["scratch"]["gflops"], 1
            else:
                assert column == "scratch % of GEMM peak"
                want, places = timings["scratch"]["percent_of_peak"], 1
            assert float(cell) == pytest.approx(want, abs=0.5 * 10 ** -places + 1e-9), (row[:2], column)
            checked += 1
    assert checked == len(rows) * (2 * len(timings) - 1 + 4), \
        "every backend's ms and ratio, the fastest, scratch's ratio to it and its rates"


def test_bench_memory_and_wall_times_render_when_present(results, bench):
    from reports.render.markdown import render_markdown
    from reports.schema import validate_bench

    # the optional parts of a bench file (``--memory``, ``--with-suite``, ``--with-report``) cost
    # minutes to measure; their rendering is checked with stand-in figures
    extended = copy.deepcopy(bench)
    extended["rows"][0]["memory"] = {"scratch": {"rss_before_mib": 300.0, "peak_mib": 812.4,
                                                 "step_extra_mib": 512.4}}
    extended.update(suite_wall_s=61.25, report_wall_s=183.0)
    validate_bench(extended, "bench.json")
    markdown = render_markdown(dict(results, bench=[extended]), {})
    (_, header, rows), = [t for t in md_tables(markdown) if t[1][0] == "model" and "peak (MiB)" in t[1]]
    assert rows == [["mnist-default", "scratch", "float32", "sgd", "64", "300", "812", "512"]]
    assert "default parity suite: 61.2 s wall; default report: 183.0 s wall" in markdown


def broken_bench(bench, path):
    """Each way a bench file can be wrong → (text written to ``path``, expected message)."""
    missing_scratch = copy.deepcopy(bench)
    del missing_scratch["rows"][0]["backends"]["scratch"]
    wrong_type = copy.deepcopy(bench)
    wrong_type["rows"][0]["backends"]["scratch"]["median_s"] = "fast"
    old_grid = {key: value for key, value in bench.items() if key not in ("format", "specs", "rows")}
    old_grid.update(layers=[784, 10], grid=bench["rows"])
    old_cnn = {"model": "lenet5", "threads": 1, "frameworks": {}, "cnn": bench["rows"]}
    no_peak = dict(bench, peak_gflops={})
    with_nan = json.dumps(dict(bench, suite_wall_s=float("nan")))      # json writes it as NaN
    return {
        "missing file": (None, f"{path}: cannot read"),
        "not JSON": ("{\"layers\": [784,", f"{path}: malformed JSON"),
        "a list": ("[]", f"{path}: (top level): expected an object, got list"),
        "a results.json": ('{"format": "backprop-parity-report/1"}',
                           f"{path}: format: expected one of 'backprop-parity-bench/2', got"),
        "old grid shape": (json.dumps(old_grid), f"{path}: a bench file in the shape written before "
                                                 "backprop-parity-bench/2; re-run `backprop-parity bench"),
        "old cnn shape": (json.dumps(old_cnn), f"{path}: a bench file in the shape written before "),
        "no scratch timing": (json.dumps(missing_scratch),
                              f"{path}: (top level): rows[0]: backends: no 'scratch' timing"),
        "wrong type": (json.dumps(wrong_type),
                       f"{path}: rows[0].backends.scratch.median_s: expected a number, got 'fast'"),
        "no peak": (json.dumps(no_peak), f"{path}: (top level): rows[0]: dtype float32 has no peak_gflops"),
        "NaN": (with_nan, f"{path}: NaN in the JSON (expected finite numbers)"),
    }


@pytest.mark.parametrize("case", ["missing file", "not JSON", "a list", "a results.json", "old grid shape",
                                  "old cnn shape", "no scratch timing", "wrong type", "no peak", "NaN"])
def test_bad_bench_file_is_one_clear_error_before_anything_runs(case, bench, tmp_path, capsys):
    path = tmp_path / "bench.json"
    text, message = broken_bench(bench, path)[case]
    if text is not None:
        path.write_text(text)
    out = tmp_path / "out"
    assert main(["report", "--quick", "--bench", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1, err
    assert not out.exists(), "nothing is written (and no scenario ran) on error"
