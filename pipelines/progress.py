"""How the command line shows the progress of a scrub: a tqdm bar per stage when standard error is a
terminal, and plain timestamped lines in the log file named by `--log` (a bar's carriage returns would
garble a log). Standard error that is not a terminal gets neither: scripts read one plain sentence there
when a run fails."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from tqdm import tqdm

from assets.progress import LOGGER


class ProgressHandler(logging.Handler):
    def __init__(self, stream: TextIO, bars: bool) -> None:
        super().__init__(logging.INFO)
        self.stream = stream
        self.bars = bars
        self.open: dict[str, tqdm] = {}

    def emit(self, record: logging.LogRecord) -> None:
        tracker, event = getattr(record, "stage", None), getattr(record, "event", None)
        if tracker is None:
            return
        if not self.bars:
            stamp = time.strftime("%H:%M:%S")
            self.stream.write(f"{stamp} claimscrub {record.getMessage()}\n")
            self.stream.flush()
            return
        if event == "start":
            self.open[tracker.name] = tqdm(total=tracker.total, desc=f"{tracker.name:<8}", unit=f" {tracker.unit}",
                                           unit_scale=tracker.unit == "rows", file=self.stream, leave=True, dynamic_ncols=True)
        bar = self.open.get(tracker.name)
        if bar is None:
            return
        bar.update(tracker.done - bar.n)
        if event == "done":
            bar.set_postfix_str(f"{tracker.rows:,} rows, {tracker.seconds:.2f} s")
            bar.close()
            del self.open[tracker.name]


def show_progress(log: TextIO | None = None, stream: TextIO | None = None, bars: bool = True) -> None:
    """Bars on `stream` (standard error) if it is a terminal and `bars` allows them, plain lines on `log` if
    given; these replace any earlier ones."""
    stream = stream or sys.stderr
    for earlier in [h for h in LOGGER.handlers if isinstance(h, ProgressHandler)]:
        LOGGER.removeHandler(earlier)
    if bars and stream.isatty():
        LOGGER.addHandler(ProgressHandler(stream, bars=True))
    if log is not None:
        LOGGER.addHandler(ProgressHandler(log, bars=False))
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False
