"""Progress of the long stages, as records of the `claimscrub.progress` logger.

The stages only report (started, so far, done with rows and seconds); whoever runs them decides how to
show it: the command line draws a bar per stage on a terminal and writes plain lines into a log, and a
Dagster run keeps the same rows and seconds as materialization metadata.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

LOGGER = logging.getLogger("claimscrub.progress")


@dataclass
class Stage:
    """One stage of a run: `total` units of work (None when unknown), `done` so far."""

    name: str
    total: int | None
    unit: str
    done: int = 0
    rows: int = 0
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0

    def advance(self, count: int = 1, what: str = "") -> None:
        """Count `count` more units done; `what` names them (a file, say) in the plain progress line."""
        self.done += count
        LOGGER.info("%s: %s after %.1f s%s", self.name, self.position(), time.monotonic() - self.started,
                    f" ({what})" if what else "", extra={"stage": self, "event": "advance"})

    def position(self) -> str:
        of = f" of {self.total:,}" if self.total is not None else ""
        return f"{self.done:,}{of} {self.unit}"


@contextmanager
def stage(name: str, total: int | None = None, unit: str = "rows") -> Iterator[Stage]:
    """Time a stage and report it; the caller sets `rows` to the rows the stage produced."""
    tracker = Stage(name, total, unit)
    LOGGER.info("%s: started", name, extra={"stage": tracker, "event": "start"})
    yield tracker
    tracker.seconds = round(time.monotonic() - tracker.started, 2)
    LOGGER.info("%s: done, %s rows in %.2f s", name, f"{tracker.rows:,}", tracker.seconds,
                extra={"stage": tracker, "event": "done"})
