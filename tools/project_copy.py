"""Copy the project's files (tracked, plus untracked files git does not ignore) to a folder.

Shared by ``seed_sweep.py`` (a frozen snapshot, so edits made while a long sweep runs do not
leak into it) and ``mutation_test.py`` (one copy per mutant).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def project_files(root: Path = ROOT) -> list[str]:
    """Paths (relative to ``root``) that ``git ls-files`` lists as tracked or untracked-not-ignored."""
    listing = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                             cwd=root, capture_output=True, check=True).stdout
    return sorted({name for name in listing.decode().split("\0") if name})


def copy_project(dest: Path, root: Path = ROOT) -> Path:
    """Copy every project file to ``dest`` (created); files deleted in the working tree are skipped."""
    dest = Path(dest)
    for name in project_files(root):
        source = root / name
        if not source.is_file():
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return dest
