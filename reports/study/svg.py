"""The annotated graph drawn as inline SVG: boxes, text lines and edges from the JSON-ready graph
of :mod:`reports.study.graph` (positions from its layout), nothing measured from a browser.

A node is a box of monospace text lines — its op (bold), its name and shape, a summary of its
forward value and one of its gradient (μ mean, σ standard deviation, [min, max], 3 significant
digits). A forward edge is a solid grey arrow; a backward edge a dashed red arrow beside it,
pointing back, with its local rule in a dashed box on the way. Text is monospace so that a box's
width follows from its longest line (:data:`CHAR_EM` em per character); every string is escaped
with :func:`html.escape`; the drawing has a ``viewBox`` (it scales with the page) and no script,
style sheet, font or other resource of its own.
"""

from __future__ import annotations

from html import escape

FONT = "DejaVu Sans Mono, Menlo, Consolas, monospace"
TITLE_PX = 12          # the op line
LINE_PX = 11           # name, shape, value and gradient lines
RULE_PX = 10.5         # a backward edge's rule
CHAR_EM = 0.61         # advance of one monospace character, in em (DejaVu Sans Mono: 0.602)
PAD = 7                # inside a box, around its text
LEADING = 1.3          # line height, in em
RULE_CHARS = 30        # a rule wraps after this many characters
NOTE_CHARS = 30        # so does a node's note
BACK_OFFSET = 7        # a backward edge runs this far right of its forward edge
MARGIN = 12

STYLES = {             # node kind → (fill, stroke)
    "op": ("#eef4fb", "#4a6fa5"),
    "parameter": ("#fff6db", "#b8860b"),
    "data": ("#f2f2f2", "#888888"),
    "loss": ("#fdecea", "#b03a2e"),
}
FORWARD_COLOUR = "#555555"
BACKWARD_COLOUR = "#c0392b"


def fmt(value: float) -> str:
    """A summary number as stored (3 significant digits), with a real minus sign."""
    return f"{value:.3g}".replace("-", "−")


def fmt_summary(summary: dict, shape) -> list[str]:
    """The summary's lines: ``= v`` for a scalar; ``μ m σ s`` and ``[min, max]`` otherwise."""
    if not shape:
        return [f"= {fmt(summary['mean'])}"]
    return [f"μ {fmt(summary['mean'])} σ {fmt(summary['std'])}",
            f"[{fmt(summary['min'])}, {fmt(summary['max'])}]"]


def _summary_lines(label: str, summary: dict, shape) -> list[tuple[str, int, bool]]:
    first, *rest = fmt_summary(summary, shape)
    return ([(f"{label:<5} {first}", LINE_PX, False)]
            + [(f"{'':<5} {line}", LINE_PX, False) for line in rest])


def node_lines(node: dict) -> list[tuple[str, int, bool]]:
    """(text, font size, bold) for each line of a node's box."""
    shape = node["shape"]
    head = node["name"] or ""
    if node.get("alias"):
        head = f"{head} = {node['alias']}"
    head = f"{head} ({', '.join(map(str, shape))})" if shape else f"{head} (scalar)"
    lines = [(node["op"], TITLE_PX, True), (head.strip(), LINE_PX, False)]
    lines += _summary_lines("value", node["value"], shape)
    if node["grad"] is not None:
        lines += _summary_lines(node["grad_label"], node["grad"], shape)
    for extra in node.get("grads_more", []):
        lines += _summary_lines(extra["label"], extra["grad"], shape)
    if node.get("note"):
        lines += [(line, LINE_PX, False) for line in wrap(node["note"], NOTE_CHARS)]
    return lines


def wrap(text: str, width: int = RULE_CHARS) -> list[str]:
    """``text`` in lines of at most ``width`` characters, broken at spaces (a longer word alone)."""
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return lines + [line] if line else lines


def box_size(lines: list[tuple[str, float, bool]]) -> tuple[float, float]:
    width = max(len(text) * size * CHAR_EM for text, size, _ in lines)
    height = sum(size * LEADING for _, size, _ in lines)
    return round(width + 2 * PAD), round(height + 2 * PAD - 2)


def node_size(node: dict) -> tuple[float, float]:
    return box_size(node_lines(node))


def rule_lines(rule: str) -> list[tuple[str, float, bool]]:
    return [(line, RULE_PX, False) for line in wrap(rule)]


def rule_size(rule: str) -> tuple[float, float]:
    return box_size(rule_lines(rule))


def _text(lines, left: float, top: float, colour: str) -> list[str]:
    out, y = [], top + PAD
    for text, size, bold in lines:
        y += size * LEADING
        weight = ' font-weight="bold"' if bold else ""
        out.append(f'<text x="{left + PAD:.1f}" y="{y - size * (LEADING - 1) - 1:.1f}" font-size="{size}"'
                   f'{weight} fill="{colour}" xml:space="preserve">{escape(text)}</text>')
    return out


def _path(points, dx: float = 0.0) -> str:
    return " ".join(f"{'M' if i == 0 else 'L'}{x + dx:.1f},{y:.1f}" for i, (x, y) in enumerate(points))


def _markers(prefix: str) -> str:
    def marker(name, colour):
        return (f'<marker id="{prefix}-{name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
                f'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" '
                f'fill="{colour}"/></marker>')
    return f"<defs>{marker('fwd', FORWARD_COLOUR)}{marker('back', BACKWARD_COLOUR)}</defs>"


def draw(graph: dict, prefix: str, title: str) -> str:
    """The SVG markup of one laid-out graph (``nodes``, ``edges``, ``width``, ``height`` of
    :func:`reports.study.graph.graph_data`); ``prefix`` keeps its marker ids apart from those of
    the page's other drawings."""
    prefix = "".join(c if c.isalnum() or c == "-" else "-" for c in prefix)
    width, height = graph["width"], graph["height"]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
           f'height="{height}" style="max-width:100%;height:auto" font-family="{escape(FONT)}" '
           f'role="img"><title>{escape(title)}</title>', _markers(prefix)]
    for edge in graph["edges"]:
        if edge["kind"] == "forward":
            out.append(f'<path d="{_path(edge["points"])}" fill="none" stroke="{FORWARD_COLOUR}" '
                       f'stroke-width="1.3" marker-end="url(#{prefix}-fwd)"/>')
        else:                              # drawn from the consumer back to the producer
            out.append(f'<path d="{_path(edge["points"], BACK_OFFSET)}" fill="none" '
                       f'stroke="{BACKWARD_COLOUR}" stroke-width="1.3" stroke-dasharray="5 3" '
                       f'marker-end="url(#{prefix}-back)"/>')
    for edge in graph["edges"]:
        label = edge.get("label")
        if label:
            left, top = label["x"] - label["w"] / 2, label["y"] - label["h"] / 2
            out.append(f'<rect x="{left:.1f}" y="{top:.1f}" width="{label["w"]}" height="{label["h"]}" '
                       f'rx="3" fill="#ffffff" stroke="{BACKWARD_COLOUR}" stroke-dasharray="3 2"/>')
            out += _text(rule_lines(edge["rule"]), left, top, "#922b21")
    for node in graph["nodes"]:
        fill, stroke = STYLES[node["kind"]]
        left, top = node["x"] - node["w"] / 2, node["y"] - node["h"] / 2
        thick = 2.4 if node.get("reused") else 1.2
        out.append(f'<rect x="{left:.1f}" y="{top:.1f}" width="{node["w"]}" height="{node["h"]}" rx="5" '
                   f'fill="{fill}" stroke="{stroke}" stroke-width="{thick}"/>')
        out += _text(node_lines(node), left, top, "#1a1a1a")
    out.append("</svg>")
    return "".join(out)
