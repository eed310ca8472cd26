"""A griffe extension for the API reference (``mkdocs.yml``): the docstrings' Sphinx roles as links.

The docstrings cross-reference with Sphinx roles (``:mod:`judge.parity```, ``:class:`~scratch.spec.
ModelSpec```, ``:func:`run```). mkdocstrings renders docstrings as Markdown, where a role would show
as the literal text ``:mod:``. This extension rewrites each role, before the docstring is parsed, as
an *optional* autorefs link: a link where the target is on one of the API pages, plain code where it
is not (a relative or private name), and never a warning, so ``mkdocs build --strict`` stays green.
``~a.b.C`` shows ``C``, as in Sphinx; ``text <target>`` shows ``text``.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:mod|class|func|meth|data|attr|exc|obj|const):`([^`]+)`")
"""A Sphinx Python-domain role and its content."""


def _link(match: re.Match) -> str:
    content = match.group(1).strip()
    explicit = re.fullmatch(r"(.+?)\s*<([^>]+)>", content)
    if explicit:
        shown, target = explicit.group(1), explicit.group(2)
    else:
        target = content.lstrip("~")
        shown = target.rsplit(".", 1)[-1] if content.startswith("~") else target
    target = target.removesuffix("()")
    return (f'<autoref identifier="{html.escape(target)}" optional>'
            f"<code>{html.escape(shown)}</code></autoref>")


def rewrite(text: str) -> str:
    """``text`` with every Sphinx role replaced by an optional autorefs link."""
    return ROLE.sub(_link, text)


class SphinxRoles(griffe.Extension):
    """Rewrites the roles of every docstring once the object tree is built (griffe calls
    ``on_object`` for every object below a package, ``on_package`` for the package itself)."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value)

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self.on_object(obj=pkg)
