"""The HTML report: one self-contained file (inline CSS, no scripts, no external resources) with
the plots as PNG files beside it, referenced by relative paths, so the folder opens from disk.

The verdict line comes right under the title. Colour comes only from CSS classes: status cells
``ok`` (green), ``fail`` (red), ``neutral`` (grey), ``breaks`` (orange: a measured breakdown that is
the point of the table, not a failed check — the study's softmax computed the long way round);
heat-map cells ``heat-0`` … ``heat-6`` by log10 of the error in ε units
(``reports.render.heatmap``), ``fail`` outlined in red. Every piece of text from the results is
escaped with :func:`html.escape`; text between backticks in a paragraph becomes ``<code>``.
"""

from __future__ import annotations

from html import escape

from reports.render.blocks import Details, Svg
from reports.render.document import Image, Pre, Section, Table, sections, verdict_line

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
caption { caption-side: top; text-align: left; font-weight: bold; padding: 0.3em 0; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
img { max-width: 100%; display: block; margin: 0.8em 0; }
nav ul { columns: 2; }
table.study-rows, table.study-records { display: block; overflow-x: auto; }
table.study-rows td:nth-child(6), table.study-records td:nth-child(2) { font-family: monospace; }
table.study-rows td:nth-child(n+3):nth-child(-n+5) { white-space: nowrap; }
figure.svg { margin: 0.8em 0; overflow-x: auto; }
figure.svg svg { max-width: 100%; height: auto; }
details { margin: 0.4em 0; }
summary { cursor: pointer; font-weight: 600; }
p.verdict { font-size: 1.1em; font-weight: bold; padding: 0.5em 0.7em; border-left: 0.4em solid; }
p.verdict.pass { background: #e6f4ea; border-color: #1e7b34; }
p.verdict.fail { background: #fde8e8; border-color: #b3261e; }
td.ok { background: #d8f0dc; color: #14532d; }
td.fail { background: #f9d6d5; color: #7f1d1d; font-weight: bold; }
td.neutral { background: #eef0f3; color: #374151; }
td.breaks { background: #fdebd0; color: #7e3f00; font-weight: bold; }
table.heat { display: inline-table; margin-right: 1.2em; }
table.heat td { text-align: right; font-variant-numeric: tabular-nums; min-width: 3.5em; }
td.heat-0 { background: #ffffff; }
td.heat-1 { background: #e8f5e4; }
td.heat-2 { background: #c4e6bb; }
td.heat-3 { background: #fff1a8; }
td.heat-4 { background: #fdc98a; }
td.heat-5 { background: #f6894f; }
td.heat-6 { background: #cf2f1c; color: #fff; }
td.heat-na { background: #777; color: #fff; }
table.heat td.fail { outline: 3px solid #b3261e; outline-offset: -3px; font-weight: bold; color: inherit; }
""".strip()


def render_html(results: dict, images: dict[str, str]) -> str:
    """The report as an HTML document; ``images``: plot key → file name beside the HTML."""
    parts = sections(results, images)
    line = verdict_line(results)
    outcome = "pass" if line.startswith("verdict: PASS") else "fail"
    body = ["<h1>backprop-parity report</h1>",
            f'<p id="verdict" class="verdict {outcome}">{escape(line)}</p>', _nav(parts)]
    body += [_section(section) for section in parts]
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>backprop-parity report ({escape(results['mode'])})</title>",
        f"<style>\n{STYLE}\n</style>",
        "</head>",
        "<body>",
        *body,
        "</body>",
        "</html>",
        "",
    ])


def _nav(parts: list[Section]) -> str:
    items = "".join(f'<li><a href="#{escape(s.id)}">{escape(s.title)}</a></li>' for s in parts)
    return f"<nav><ul>{items}</ul></nav>"


def _section(section: Section) -> str:
    out = [f'<section id="{escape(section.id)}">', f"<h2>{escape(section.title)}</h2>"]
    for block in section.blocks:
        out.append(_block(block))
    out.append("</section>")
    return "\n".join(out)


def render_block(block) -> str:
    """One block as HTML (the study page renders its sections with it too)."""
    return _block(block)


def _block(block) -> str:
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Image):
        return f'<img src="{escape(block.file)}" alt="{escape(block.alt)}">'
    if isinstance(block, Pre):
        return f"<pre>{escape(block.text)}</pre>"
    if isinstance(block, Svg):
        return f'<figure class="svg" role="img" aria-label="{escape(block.alt)}">{block.markup}</figure>'
    if isinstance(block, Details):
        inner = "\n".join(_block(inner) for inner in block.blocks)
        opened = " open" if block.open else ""
        return f"<details{opened}><summary>{_inline(block.summary)}</summary>\n{inner}\n</details>"
    return f"<p>{_inline(block)}</p>"


def _inline(text: str) -> str:
    """Escape ``text``; `backticked` spans become <code>."""
    pieces = text.split("`")
    if len(pieces) % 2 == 0:                  # an unmatched backtick: keep it literally
        return escape(text)
    return "".join(f"<code>{escape(p)}</code>" if i % 2 else escape(p) for i, p in enumerate(pieces))


def _cell(text: str, css: str) -> str:
    return f'<td class="{escape(css)}">{escape(text)}</td>' if css else f"<td>{escape(text)}</td>"


def _table(table: Table) -> str:
    table_id = f' id="table-{escape(table.id)}"' if table.id else ""
    css = f' class="{escape(table.css)}"' if table.css else ""
    out = [f"<table{table_id}{css}>"]
    if table.caption:
        out.append(f"<caption>{escape(table.caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th>{escape(c)}</th>" for c in table.columns) + "</tr></thead>")
    out.append("<tbody>")
    classes = table.classes or [[""] * len(row) for row in table.rows]
    for row, row_classes in zip(table.rows, classes, strict=True):
        out.append("<tr>" + "".join(_cell(cell, css) for cell, css in zip(row, row_classes, strict=True))
                   + "</tr>")
    out.append("</tbody>")
    out.append("</table>")
    return "\n".join(out)
