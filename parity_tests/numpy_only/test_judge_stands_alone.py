"""The judge stands on its own: no module of ``judge/`` imports ``twins``.

The judge compares any two traces of a spec; the twins are one client of it and hand it what it
needs (backend factories, pairs, traces) as arguments. Read from the source (``ast``), every
``import twins…`` and ``from twins… import …`` counts — at module level or inside a function, where
it would run as surely — and so does ``importlib.import_module("twins…")`` or ``__import__("twins…")``
with a literal name. The checker is shown planted sources where it must fail.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = "twins"


def _is_forbidden(module: str | None) -> bool:
    return module is not None and (module == FORBIDDEN or module.startswith(FORBIDDEN + "."))


def forbidden_imports(source: str, filename: str = "<source>") -> list[tuple[int, str]]:
    """(line, imported module) of every import of ``twins`` (or a submodule) in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if _is_forbidden(alias.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and _is_forbidden(node.module):
            found.append((node.lineno, node.module))
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str) and _is_forbidden(node.args[0].value)
              and _called_name(node.func) in ("import_module", "__import__")):
            found.append((node.lineno, node.args[0].value))
    return sorted(found)


def _called_name(func) -> str:
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def test_no_judge_module_imports_twins():
    paths = sorted((ROOT / "judge").rglob("*.py"))
    assert len(paths) >= 10, paths                          # the package is really there
    offenders = {str(path.relative_to(ROOT)): hits for path in paths
                 if (hits := forbidden_imports(path.read_text(encoding="utf-8"), str(path)))}
    assert offenders == {}


@pytest.mark.parametrize("source, line", [
    ("from twins.backends import PAIRS\n", 1),
    ("import twins\n", 1),
    ("import numpy as np\nimport twins.scratch_backend as sb\n", 2),
    ("def f(backend):\n    from twins.scratch_backend import ScratchBackend\n"
     "    return isinstance(backend, ScratchBackend)\n", 2),
    ("class C:\n    def m(self):\n        from twins import backends\n        return backends\n", 3),
    ("import importlib\n\ndef f():\n    return importlib.import_module('twins.backends')\n", 4),
    ("def f():\n    return __import__('twins')\n", 2),
], ids=["top-level from", "top-level import", "aliased submodule", "inside a function", "inside a method",
        "importlib", "__import__"])
def test_the_checker_reports_a_planted_twins_import(source, line):
    [(found_line, module)] = forbidden_imports(source)
    assert found_line == line and module.split(".")[0] == "twins"


def test_the_checker_lets_other_names_through():
    source = ("import twinsies\nfrom judge import parity\nfrom . import twins\n"
              "twins = {'a': 1}\nimportlib.import_module('scratch.model')\n")
    assert forbidden_imports(source) == []
