"""The Markdown summary: GitHub-renderable pipe tables and image links to the PNGs beside it.

The verdict line comes first, in bold, right under the title. Table cells escape ``|`` (as
``\\|``) and turn newlines into spaces, so a cell never breaks its row; preformatted
text goes into fenced code blocks.
"""

from __future__ import annotations

from reports.render.blocks import Details, Svg
from reports.render.document import Image, Pre, Table, sections, verdict_line


def render_markdown(results: dict, images: dict[str, str]) -> str:
    """The report as Markdown; ``images``: plot key → file name beside the Markdown file."""
    out = ["# backprop-parity report", "", f"**{verdict_line(results)}**", ""]
    for section in sections(results, images):
        out += [f"## {section.title}", ""]
        for block in section.blocks:
            out += _block(block) + [""]
    return "\n".join(out).rstrip("\n") + "\n"


def _block(block) -> list[str]:
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Image):
        return [f"![{_cell(block.alt)}]({block.file})"]
    if isinstance(block, Pre):
        fence = "````" if "```" in block.text else "```"
        return [fence + "text", block.text, fence]
    if isinstance(block, Svg):
        return [f"*(drawing, in the HTML page: {_cell(block.alt)})*"]
    if isinstance(block, Details):
        out = [f"**{_cell(block.summary)}**", ""]
        for inner in block.blocks:
            out += _block(inner) + [""]
        return out[:-1]
    return [block]


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _table(table: Table) -> list[str]:
    lines = [f"**{_cell(table.caption)}**", ""] if table.caption else []
    lines.append("| " + " | ".join(_cell(c) for c in table.columns) + " |")
    lines.append("|" + "|".join("---" for _ in table.columns) + "|")
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table.rows]
    return lines
