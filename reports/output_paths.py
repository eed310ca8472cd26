"""Output paths (``--save``, ``--json``, ``--out``), checked before any work starts.

A long run must not end in "cannot write": every output path is checked first, and two flags
that name the same file (after resolving links and ``..``) are refused, since the second write
would replace the first. Missing folders are created at write time as before, so the check is on
the nearest folder that exists: it must be a folder and writable.
"""

from __future__ import annotations

import os
from pathlib import Path

from reports.exit_codes import UsageError


def check_outputs(paths: dict[str, object], *, folders: tuple[str, ...] = ()) -> None:
    """Raise :class:`UsageError` unless every ``flag → path`` (None = not given) can be written:
    a file path for each flag, a folder path for the flags in ``folders``; no two the same."""
    seen: dict[Path, str] = {}
    for flag, path in paths.items():
        if path is None:
            continue
        resolved = Path(os.path.abspath(path)).resolve()
        if resolved in seen:
            raise UsageError(f"{flag} {path}: the same file as {seen[resolved]}; the second write "
                             "would replace the first (give two different paths)")
        seen[resolved] = f"{flag} {path}"
        _check_one(flag, Path(path), folder=flag in folders)


def _check_one(flag: str, path: Path, *, folder: bool) -> None:
    if folder:
        if path.exists() and not path.is_dir():
            raise UsageError(f"{flag} {path}: exists and is not a folder")
        if path.is_dir():
            _writable_folder(flag, path, path)
            return
    else:
        if path.is_dir():
            raise UsageError(f"{flag} {path}: is a folder; expected a file path")
        if path.exists() and not os.access(path, os.W_OK):
            raise UsageError(f"{flag} {path}: the file exists and is not writable")
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    _writable_folder(flag, path, parent)


def _writable_folder(flag: str, path: Path, folder: Path) -> None:
    if not folder.is_dir():
        raise UsageError(f"{flag} {path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: folder {folder} is not writable")
