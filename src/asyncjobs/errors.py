"""The exception tree of asyncjobs.

::

    AsyncJobsError
    ├── ValidationError      job input failed its schema; nothing was stored
    ├── NotRegistered        a task or workflow slug that the Jobs object does not know
    ├── Forbidden            an Access callable refused the call
    └── StorageError         the database failed or could not be reached
        └── ConnectionLost   the connection broke; the statement may or may not have run

    JobCancelled             raised by a handler to cancel its own job (not an error)
    ChildFailed              raised by ``run_child`` when the child failed for good or was
                             cancelled (a failed step of the parent)
"""

from __future__ import annotations

from typing import Any


class AsyncJobsError(Exception):
    """Root of every error asyncjobs raises on purpose."""


class ValidationError(AsyncJobsError, ValueError):
    """Raised when a job's input does not match its ``input_schema``.

    Attributes:
        errors: pydantic's error list, each with ``loc``, ``msg`` and ``type``.
    """

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class NotRegistered(AsyncJobsError, LookupError):
    """Raised when a task or workflow slug is not registered on the ``Jobs`` object."""


class Forbidden(AsyncJobsError, PermissionError):
    """Raised when ``override_access=False`` and the ``Access`` callable says no."""


class StorageError(AsyncJobsError):
    """Raised when the database fails.

    Attributes:
        driver_error: the driver's or SQLAlchemy's own exception, when there is one. It is not
            chained as the ``__cause__``, so that a logged traceback never shows the bound
            values its message may quote.
    """

    driver_error: BaseException | None = None


class ConnectionLost(StorageError):
    """Raised when the connection to the database broke or could not be made.

    The statement may or may not have taken effect. Inside a run this is never the job's
    fault: the job is left to its lease and no try is counted.
    """


class JobCancelled(Exception):
    """Raise inside a handler to cancel the job: no retry, no log entry, no try counted."""


class ChildFailed(Exception):
    """Raised in a parent by ``run_child`` when its child failed for good or was cancelled.

    Attributes:
        child_id: the child job's id.
        error: the child's ``Job.error`` (``{name, message, cancelled, ...}``).
    """

    def __init__(self, child_id: int, error: dict[str, Any]) -> None:
        what = "was cancelled" if error.get("cancelled") else "failed"
        super().__init__(f"child job {child_id} {what}: {error.get('message', '')}")
        self.child_id = child_id
        self.error = error


class Suspended(BaseException):
    """A durable wait ends the attempt here (``asyncjobs.suspension``); a ``BaseException``
    so that a handler's ``except Exception`` lets it through."""

    def __init__(self, write: Any) -> None:
        super().__init__("the job is suspended")
        self.write = write  # what ``suspension`` writes: a ``Suspension``


class WriteRefused(Exception):
    """A write of one job failed for a reason of its own (a value that the encoder or the
    database refuses): that job's attempt fails, not its batch."""


class JobRunAborted(Exception):
    """This worker no longer owns the job (lease lost or job cancelled): write nothing more."""


class HandlerImportError(Exception):
    """An import-string handler could not be imported: the job fails for good."""
