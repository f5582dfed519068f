"""What long commands print while they work: a live count on a terminal, log lines otherwise."""

from __future__ import annotations

import logging
import sys
from collections import Counter
from typing import TextIO

from asyncjobs.cli.errors import describe

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(message)s"
MESSAGE_FORMAT = "%(message)s"
OUTCOMES = {
    "success": "succeeded",
    "error": "will retry",
    "error-reached-max-retries": "failed",
    "suspended": "suspended",
    "aborted": "handed back",
}


class OneLine(logging.Formatter):
    """A record on one line: an exception is named after the message, without its traceback.

    The command line's errors are one line each; a failed job's traceback is kept with the
    job (``asyncjobs jobs show ID``).
    """

    def format(self, record: logging.LogRecord) -> str:
        exc_info, exc_text = record.exc_info, record.exc_text
        record.exc_info = record.exc_text = None
        try:
            line = super().format(record)
        finally:
            record.exc_info, record.exc_text = exc_info, exc_text
        if exc_info and exc_info[1] is not None:
            line += f" ({describe(exc_info[1])})"
        return line


class Progress(logging.Handler):
    """Plain log lines on ``stream``; see :class:`LiveCount` for the terminal version."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(logging.INFO)
        self.stream = stream
        self.setFormatter(OneLine(PLAIN_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        self.stream.write(self.format(record) + "\n")
        self.stream.flush()

    def reset(self) -> None:
        """A new run starts."""

    def finish(self) -> None:
        """The run is over: leave the stream ready for the summary."""


class LiveCount(Progress):
    """One line, redrawn as jobs finish; other messages scroll above it."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self.setFormatter(OneLine(MESSAGE_FORMAT))
        self.total = 0
        self.outcomes: Counter[str] = Counter()
        self.drawn = False

    def emit(self, record: logging.LogRecord) -> None:
        if hasattr(record, "new") and hasattr(record, "retrying"):
            self.total += int(getattr(record, "new", 0)) + int(getattr(record, "retrying", 0))
        elif hasattr(record, "job_id") and getattr(record, "status", None) in OUTCOMES:
            self.outcomes[OUTCOMES[str(getattr(record, "status", ""))]] += 1
        else:
            self._clear()
            self.stream.write(self.format(record) + "\n")
        self._draw()

    def _draw(self) -> None:
        if not self.total:
            return
        done = sum(self.outcomes.values())
        parts = ", ".join(f"{n} {name}" for name, n in self.outcomes.items() if n)
        self.stream.write(
            f"\r\x1b[KRunning jobs: {done}/{self.total} done" + (f" ({parts})" if parts else "")
        )
        self.stream.flush()
        self.drawn = True

    def _clear(self) -> None:
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.drawn = False

    def reset(self) -> None:
        self.total = 0
        self.outcomes.clear()

    def finish(self) -> None:
        self._clear()
        self.stream.flush()


def configure(*, live: bool | None = None, stream: TextIO | None = None) -> Progress:
    """Send asyncjobs' own log records to ``stream`` (stderr); a live count if it is a TTY."""
    stream = stream or sys.stderr
    if live is None:
        live = stream.isatty()
    handler = LiveCount(stream) if live else Progress(stream)
    logger = logging.getLogger("asyncjobs")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return handler
