"""Run the claimscrub command and SIGKILL it at a named point: `python kill_at.py POINT scrub ARGS...`.

A real process killed by a real signal, at a point a test chooses rather than after a guessed delay.
"""

import os
import signal
import sys

import assets.flow
import assets.outputs
import reference.loaders
from pipelines.cli import main


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _after(module, name: str) -> None:
    """Kill the process right after `name` returns: its writes are made, its transaction not committed."""
    real = getattr(module, name)

    def wrapper(*args, **kwargs):
        real(*args, **kwargs)
        _die()

    setattr(module, name, wrapper)


def _after_moves(count: int) -> None:
    """Kill the process once `count` report files have been moved into the output folder."""
    real, moved = os.replace, []

    def replace(src, dst):
        if os.path.basename(str(dst)) in assets.outputs.OUTPUT_FILES:
            if len(moved) == count:
                _die()
            moved.append(dst)
        real(src, dst)

    os.replace = replace


POINTS = {
    "reference_loading": lambda: reference.loaders.LOADERS.update(
        pprrvu=lambda con, release: (reference.loaders.load_pprrvu(con, release), _die())),
    "rows_staged": lambda: _after(assets.flow, "land_rows"),
    "rows_validated": lambda: _after(assets.flow, "validate_batch"),
    "lines_priced": lambda: _after(assets.flow, "price_batch"),
    "lines_flagged": lambda: _after(assets.flow, "scrub_batch"),
    "reports_staged": lambda: _after_moves(0),
    "reports_half_moved": lambda: _after_moves(2),
}

if __name__ == "__main__":
    POINTS[sys.argv[1]]()
    sys.exit(main(sys.argv[2:]))
