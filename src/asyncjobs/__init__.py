"""asyncjobs: durable jobs, workflows and schedules inside your app's own event loop."""

from asyncjobs import testing
from asyncjobs.decorators import task, workflow
from asyncjobs.definitions import Access, AutoRun, Schedule, Task, Workflow
from asyncjobs.errors import (
    AsyncJobsError,
    ChildFailed,
    Forbidden,
    JobCancelled,
    NotRegistered,
    StorageError,
    ValidationError,
)
from asyncjobs.jobs import Jobs
from asyncjobs.models import Job, JobLogEntry, RunResult, ScheduleResult, TaskStatus
from asyncjobs.policies import Concurrency, Lease, ProcessingOrder
from asyncjobs.retention import Retention
from asyncjobs.retry import Backoff, Retries

__all__ = [
    "Access",
    "AsyncJobsError",
    "AutoRun",
    "Backoff",
    "ChildFailed",
    "Concurrency",
    "Forbidden",
    "Job",
    "JobCancelled",
    "JobLogEntry",
    "Jobs",
    "Lease",
    "NotRegistered",
    "ProcessingOrder",
    "Retention",
    "Retries",
    "RunResult",
    "Schedule",
    "ScheduleResult",
    "StorageError",
    "Task",
    "TaskStatus",
    "ValidationError",
    "Workflow",
    "task",
    "testing",
    "workflow",
]
