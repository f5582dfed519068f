"""Retry, cancel and run now, on one job or every job matching a filter; each confirmed first."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from asyncjobs.dashboard.guard import Permission, csrf_valid, viewer_of
from asyncjobs.dashboard.host import queries
from asyncjobs.dashboard.query import JobFilter
from asyncjobs.dashboard.render import VERBS, base_path

if TYPE_CHECKING:
    from asyncjobs.dashboard.host import Dashboard, DashboardHost

MAX_FORM = 16_384  # bytes; the forms hold a filter and a token
Form = dict[str, str]


@dataclass(frozen=True)
class Action:
    permission: Permission
    verb: str  # as a button says it
    one: Callable[[DashboardHost, int], Awaitable[str]]
    matching: Callable[[DashboardHost, JobFilter], Awaitable[str]]


async def retry_one(jobs: DashboardHost, job_id: int) -> str:
    if await jobs.retry_by_id(job_id):
        return f"Job {job_id} will run again."
    return f"Job {job_id} is neither failed nor cancelled: nothing changed."


async def cancel_one(jobs: DashboardHost, job_id: int) -> str:
    if await jobs.cancel_by_id(job_id):
        return f"Job {job_id} is cancelled."
    return f"Job {job_id} has already finished: nothing changed."


async def run_one(jobs: DashboardHost, job_id: int) -> str:
    changed = await queries(jobs).make_due({"id": job_id}, jobs.clock())
    wake(jobs, changed)
    if changed:
        return f"Job {job_id} is due now."
    return f"Job {job_id} is running or finished: nothing changed."


async def retry_matching(jobs: DashboardHost, chosen: JobFilter) -> str:
    changed = await queries(jobs).retry(chosen.where(jobs.registry), jobs.clock())
    wake(jobs, changed)
    return f"{_jobs(len(changed))} will run again."


async def cancel_matching(jobs: DashboardHost, chosen: JobFilter) -> str:
    cancelled = 0
    for where in chosen.wheres(jobs.registry):
        cancelled += await jobs.cancel(where=where)
    return f"{_jobs(cancelled)} cancelled."


async def run_matching(jobs: DashboardHost, chosen: JobFilter) -> str:
    changed = await queries(jobs).make_due(chosen.where(jobs.registry), jobs.clock())
    wake(jobs, changed)
    return f"{_jobs(len(changed))} due now."


ACTIONS = {
    "retry": Action("run", VERBS["retry"], retry_one, retry_matching),
    "cancel": Action("cancel", VERBS["cancel"], cancel_one, cancel_matching),
    "run": Action("run", VERBS["run"], run_one, run_matching),
}


def wake(jobs: DashboardHost, changed: Sequence[tuple[int, str]]) -> None:
    """Tell this process's autoRun entries that jobs on these queues are due now."""
    for queue in sorted({queue for _, queue in changed}):
        jobs.wake.publish(queue, None)


def _jobs(number: int) -> str:
    return "1 job" if number == 1 else f"{number:,} jobs"


async def on_one(dashboard: Dashboard, request: Request) -> Response:
    """``POST /jobs/{id}/{retry|cancel|run}``."""
    job_id: int = request.path_params["id"]
    action = ACTIONS.get(request.path_params["action"])
    if action is None:
        return dashboard.renderer.refused(request, 404, "No such action.")
    form = await read_form(request)
    refusal = await _refusal(dashboard, request, form, action)
    if refusal is not None:
        return refusal
    back = f"{base_path(request)}/jobs/{job_id}"
    if form.get("confirmed") != "1":
        return _confirm(dashboard, request, form, action, f"{action.verb} job {job_id}?", back)
    message = await action.one(dashboard.jobs, job_id)
    return dashboard.renderer.redirect(request, back, message)


async def on_matching(dashboard: Dashboard, request: Request) -> Response:
    """``POST /jobs/{retry|cancel|run}`` with the list's filter in the form."""
    action = ACTIONS.get(request.path_params["action"])
    if action is None:
        return dashboard.renderer.refused(request, 404, "No such action.")
    form = await read_form(request)
    chosen = JobFilter.parse(form)
    if not chosen.active:
        return dashboard.renderer.refused(request, 400, "Choose a filter first.")
    refusal = await _refusal(dashboard, request, form, action)
    if refusal is not None:
        return refusal
    back = f"{base_path(request)}/jobs{chosen.query()}"
    if form.get("confirmed") != "1":
        jobs = dashboard.jobs
        found = await queries(jobs).count(chosen.where(jobs.registry), jobs.clock())
        matching = f"{found.value:,}{'+' if found.capped else ''}"
        question = f"{action.verb} every job matching {chosen.describe()} ({matching} now)?"
        return _confirm(dashboard, request, form, action, question, back)
    message = await action.matching(dashboard.jobs, chosen)
    return dashboard.renderer.redirect(request, back, message)


async def _refusal(
    dashboard: Dashboard, request: Request, form: Form, action: Action
) -> Response | None:
    """403 unless the viewer may do this and the form came from this dashboard."""
    if not await dashboard.guard.may(viewer_of(request), action.permission, request):
        message = f"You may look, but not {action.verb.lower()} jobs: nothing changed."
        return dashboard.renderer.refused(request, 403, message)
    if not csrf_valid(request, form):
        message = "This form did not come from this dashboard's page (or it is too old): reload it."
        return dashboard.renderer.refused(request, 403, message)
    return None


def _confirm(
    dashboard: Dashboard,
    request: Request,
    form: Form,
    action: Action,
    question: str,
    back: str,
) -> Response:
    hidden = {k: v for k, v in form.items() if k not in ("confirmed", "csrf")}
    return dashboard.renderer.page(
        request,
        "confirm.html",
        question=question,
        verb=action.verb,
        target=request.url.path,
        hidden=hidden,
        back=back,
    )


async def read_form(request: Request) -> Form:
    """The url-encoded form (the last value of a repeated field); ignored beyond ``MAX_FORM``."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            return {}
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
