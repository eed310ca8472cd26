"""Output paths (``--save``, ``--json``, ``--out``), checked before any work starts.

A long run must not end in "cannot write": every output path is checked first, and two flags that
name the same file (after resolving links and ``..``) are refused, since the second write would
replace the first. A file path must be missing or a regular file: every file is written to a
temporary name and renamed over it, which would replace a device node, a FIFO or a symbolic link
itself (:func:`scratch.weights.not_replaceable`), so those are refused. Missing folders are created
at write time as before, so the check is on the nearest folder that exists: it must be a folder in
which a file can be created — tried by creating and removing a temporary file, since permission bits
do not tell (root ignores them; a read-only or virtual file system such as /proc refuses anyway).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from reports.cli.exit_codes import UsageError
from scratch.weights import not_replaceable


def check_outputs(paths: dict[str, object], *, folders: tuple[str, ...] = ()) -> None:
    """Raise :class:`UsageError` unless every ``flag → path`` (None = not given) can be written:
    a file path for each flag, a folder path for the flags in ``folders``; no two the same."""
    seen: dict[Path, str] = {}
    for flag, given in paths.items():
        if given is None:
            continue
        path = Path(os.path.abspath(given))            # ".." and "." resolved as the shell would
        resolved = path.resolve()
        if resolved in seen:
            raise UsageError(f"{flag} {given}: the same file as {seen[resolved]}; the second write "
                             "would replace the first (give two different paths)")
        seen[resolved] = f"{flag} {given}"
        where = f"{flag} {given}"
        if flag in folders:
            if path.exists() and not path.is_dir():
                raise UsageError(f"{where}: exists and is not a folder")
        elif path.is_dir():
            raise UsageError(f"{where}: is a folder; expected a file path")
        else:
            problem = not_replaceable(path)
            if problem:
                raise UsageError(f"{where}: {problem}")
        folder = path if path.is_dir() else path.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        _check_folder(where, folder)


def _check_folder(where: str, folder: Path) -> None:
    if not folder.is_dir():
        raise UsageError(f"{where}: {folder} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise UsageError(f"{where}: cannot create a file in {folder} ({error.strerror or error})") from None
