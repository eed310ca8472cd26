"""Every Python snippet of the README and of the docs/ pages runs as written (in a scratch folder:
one saves a file)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SNIPPETS = [(page.relative_to(ROOT).as_posix(), snippet) for page in PAGES
            for snippet in re.findall(r"^```python\n(.*?)^```", page.read_text(encoding="utf-8"),
                                      flags=re.S | re.M)]


def test_the_docs_have_python_snippets():
    assert len(SNIPPETS) >= 3
    assert "docs/spec-and-weights.md" in {page for page, _ in SNIPPETS}


@pytest.mark.parametrize(("page", "snippet"), SNIPPETS,
                         ids=[f"{page}-{i}" for i, (page, _) in enumerate(SNIPPETS)])
def test_docs_snippet_runs(page, snippet, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, f"{page} python snippet", "exec"), {})   # noqa: S102
