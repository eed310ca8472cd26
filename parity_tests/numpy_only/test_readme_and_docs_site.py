"""The front doors: the README stays a landing page, every docs/ page is in the site's nav, and CI
runs the README's test command.

``mkdocs build --strict`` (``tox -e docs``) also refuses a page missing from the nav; this test
says so in the default suite, where mkdocs is not installed. mkdocs.yml is read with a pattern, not
PyYAML (the NumPy-only environment has no YAML parser): a nav entry is ``- Title: page.md`` or
``- page.md``.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README_MAX_LINES = 250
TEST_COMMAND = "tox -e scratch,parity,lint"

NAV_PAGE = re.compile(r"^\s*-\s+(?:[^:\n]+:\s+)?([\w./-]+\.md)\s*$")


def nav_pages(mkdocs_yml: str) -> set[str]:
    """The pages named in the ``nav:`` block of ``mkdocs_yml``."""
    block = mkdocs_yml.split("\nnav:\n", 1)[1]
    pages = set()
    for line in block.splitlines():
        if line and not line[0].isspace():          # the next top-level key ends the nav
            break
        match = NAV_PAGE.match(line)
        if match:
            pages.add(match.group(1))
    return pages


def site_problems(docs: Path, mkdocs_yml: str) -> list[str]:
    """Every docs/ page missing from the nav, and every nav page missing from docs/."""
    on_disk = {path.relative_to(docs).as_posix() for path in docs.rglob("*.md")}
    in_nav = nav_pages(mkdocs_yml)
    return ([f"{page}: in docs/ but not in mkdocs.yml's nav" for page in sorted(on_disk - in_nav)]
            + [f"{page}: in mkdocs.yml's nav but not in docs/" for page in sorted(in_nav - on_disk)])


def test_the_readme_is_a_landing_page():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move long-form text to docs/")


def test_every_docs_page_is_in_the_nav():
    problems = site_problems(ROOT / "docs", (ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert not problems, "\n".join(problems)
    assert "api/judge.md" in nav_pages((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))


def test_a_page_left_out_of_the_nav_is_named(tmp_path):
    (tmp_path / "api").mkdir()
    for page in ("index.md", "api/judge.md", "orphan.md"):
        (tmp_path / page).write_text("# page\n", encoding="utf-8")
    mkdocs_yml = ("site_name: x\nnav:\n  - Home: index.md\n  - API:\n      - judge: api/judge.md\n"
                  "  - Gone: gone.md\nplugins:\n  - search\n")
    assert site_problems(tmp_path, mkdocs_yml) == [
        "orphan.md: in docs/ but not in mkdocs.yml's nav", "gone.md: in mkdocs.yml's nav but not in docs/"]


def test_ci_runs_the_readmes_test_command():
    command = TEST_COMMAND
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert command in readme, f"README.md no longer shows the test command {command!r}"
    ci_commands = [line.strip() for line in ci.splitlines() if not line.lstrip().startswith("#")]
    assert any(line.endswith(command) for line in ci_commands), (
        f".ci/run does not run the README's test command {command!r}")
