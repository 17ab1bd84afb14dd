"""Reports moved into their folder all or nothing."""

from __future__ import annotations

import os
from pathlib import Path


def put_in_place(staging: Path, out_dir: Path, names: list[str], first: str = "") -> None:
    """Move the files `names` from `staging` into `out_dir`, the folder's files of those names moved aside into
    `staging/previous` first (`first` before the others: the one whose absence says the folder is not complete).

    A previous file is moved aside before the new one takes its name: renamed over an existing file, a new file
    is written out to disk before the rename returns (ext4's replace-via-rename safeguard), which a big file waits
    for. A move that fails (a report held open or locked) puts every file back as it was, then raises: the
    folder keeps the previous reports whole, never a mix of two runs."""
    previous = staging / "previous"
    previous.mkdir(exist_ok=True)
    aside, placed = [], []
    try:
        for name in sorted(names, key=lambda n: n != first):
            try:
                os.replace(out_dir / name, previous / name)
                aside.append(name)
            except FileNotFoundError:
                pass
        for name in names:
            os.chmod(staging / name, 0o600)
            os.replace(staging / name, out_dir / name)
            placed.append(name)
    except OSError:
        for name in reversed(placed):
            os.replace(out_dir / name, staging / name)
        for name in aside:
            os.replace(previous / name, out_dir / name)
        raise
