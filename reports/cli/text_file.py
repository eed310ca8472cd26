"""Reading a text file the user named: every failure is one project error that names the file."""

from __future__ import annotations

from pathlib import Path


def read_text(path, error: type[Exception]) -> str:
    """The UTF-8 text of ``path``; an unreadable or non-UTF-8 file raises ``error`` (a project
    error class, e.g. ``SpecError`` or ``DataError``) with the path first."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise error(f"{path}: cannot read (not UTF-8 text)") from None
