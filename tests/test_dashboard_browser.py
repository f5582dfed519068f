"""The dashboard in a real browser (headless Chromium) against a real uvicorn server."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import asyncjobs
from tests import browser as chrome
from tests.conftest import run_until_idle
from tests.dashboard_jobs import DATABASE_ENV, SECRET, make_jobs
from tests.servers import Server, serve

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


@pytest.fixture
def backend() -> str:
    # What the pages read is tested on both databases in test_dashboard_storage.
    return "sqlite"


@dataclass
class Dashboard:
    server: Server
    jobs: asyncjobs.Jobs
    browser: Any

    def url(self, path: str = "/") -> str:
        return self.server.url + path

    async def page(self, password: str | None = SECRET) -> Any:
        credentials = {"username": "admin", "password": password} if password else None
        context = await self.browser.new_context(http_credentials=credentials)
        return await context.new_page()


@pytest.fixture
async def dashboard(database_url: str, tmp_path: Path) -> AsyncIterator[Dashboard]:
    chrome.chromium()  # skip (or fail) before starting anything
    jobs = make_jobs(database_url)
    await jobs.start(auto_run=False)
    env = {DATABASE_ENV: database_url}
    try:
        async with (
            serve("tests.dashboard_jobs:app", env=env, log_dir=tmp_path) as server,
            chrome.browser() as launched,
        ):
            yield Dashboard(server, jobs, launched)
    finally:
        await jobs.stop()


async def failed_workflow(jobs: asyncjobs.Jobs) -> asyncjobs.Job:
    job = await jobs.queue(workflow="onboard-user", input={"email": "ada@example.com"})
    await run_until_idle(jobs, queue="onboarding")
    return job


async def confirm(page: Any, button: str) -> None:
    """Press an action button, then confirm in the dialog it opens."""
    from playwright.async_api import expect

    await page.get_by_role("button", name=button, exact=True).click()
    dialog = page.locator("#confirm-dialog")
    await expect(dialog).to_be_visible()
    await dialog.locator("#confirm-yes").click()


async def refused_status(page: Any, url: str) -> tuple[int, str, bool]:
    """Open ``url``: the answer's status and auth scheme, and whether the page got shown.

    Chromium either shows the 401 page or gives up on the sign-in
    (``ERR_INVALID_AUTH_CREDENTIALS``); either way the answer it got is read.
    """
    from playwright.async_api import Error

    answers: list[Any] = []
    page.on("response", lambda answer: answers.append(answer))
    try:
        await page.goto(url)
    except Error as exc:
        assert "ERR_INVALID_AUTH_CREDENTIALS" in str(exc)
    scheme = (await answers[-1].all_headers())["www-authenticate"].split()[0]
    shown = await page.get_by_role("heading", name="Overview").count() > 0
    return answers[-1].status, scheme, shown


async def test_login_is_refused_without_the_password_and_accepted_with_it(
    dashboard: Dashboard,
) -> None:
    from playwright.async_api import expect

    for password in (None, "guess"):
        refused = await refused_status(await dashboard.page(password=password), dashboard.url())
        assert refused == (401, "Basic", False), password

    page = await dashboard.page()
    accepted = await page.goto(dashboard.url("/"))
    assert accepted is not None and accepted.status == 200
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    await expect(page.locator("#live-state")).to_have_text("Live")


async def test_filters_narrow_the_list(dashboard: Dashboard) -> None:
    from playwright.async_api import expect

    jobs = dashboard.jobs
    emails = [await jobs.queue(task="send-email", input={"to": f"u{n}"}) for n in range(3)]
    await jobs.queue(task="resize-image", input={}, queue="media")
    failed = await jobs.queue(task="send-email", input={"fail": True})
    await run_until_idle(jobs)
    page = await dashboard.page()
    await page.goto(dashboard.url("/jobs"))
    rows = page.locator("tr[data-job]")
    await expect(rows).to_have_count(5)

    await page.get_by_label("Status").select_option("failed")
    await page.get_by_role("button", name="Filter").click()
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-job", str(failed.id))

    await page.goto(dashboard.url("/jobs"))
    await page.get_by_label("Queue").select_option("media")
    await page.get_by_role("button", name="Filter").click()
    await expect(rows).to_have_count(1)

    await page.get_by_role("link", name="Clear").click()
    await page.get_by_label("Task or workflow").fill("send-email")
    await page.get_by_label("Job id").fill(str(emails[1].id))
    await page.get_by_role("button", name="Filter").click()
    await expect(rows).to_have_count(1)
    assert re.search(rf"[?&]id={emails[1].id}", page.url)


async def test_the_job_page_of_a_failed_workflow_shows_its_steps_and_traceback(
    dashboard: Dashboard,
) -> None:
    from playwright.async_api import expect

    job = await failed_workflow(dashboard.jobs)
    page = await dashboard.page()
    await page.goto(dashboard.url("/jobs"))
    await page.get_by_role("link", name=str(job.id), exact=True).click()
    await expect(page.get_by_role("heading", name=f"Job {job.id}")).to_be_visible()
    await expect(page.locator("h1 .status")).to_have_text("failed")
    await expect(page.locator(".error-line").first).to_have_text(
        "ValueError: card declined for order 7"
    )
    await expect(page.locator("details#traceback pre")).to_contain_text("raise ValueError")
    steps = page.locator(".timeline > .step")
    await expect(steps).to_have_count(3)
    await expect(steps.locator(".step-name")).to_have_text(
        ["send-email #welcome", "resize-image #avatar", "inline #charge"]
    )
    await steps.nth(0).locator("summary").click()
    await expect(steps.nth(0).locator(".step-detail")).to_contain_text(
        '"sent_to": "ada@example.com"'
    )


async def test_the_job_page_shows_signals_and_links_parent_and_children(
    dashboard: Dashboard,
) -> None:
    from playwright.async_api import expect

    jobs = dashboard.jobs
    job = await jobs.queue(workflow="review")
    await run_until_idle(jobs, queue="onboarding")  # the child ran; the parent waits on
    assert await jobs.signal(job.id, "note", {"text": "shipping soon"})
    page = await dashboard.page()
    await page.goto(dashboard.url(f"/jobs/{job.id}"))
    rows = page.locator("#signals tbody tr")
    await expect(rows.locator(".topic")).to_have_text([re.compile("^run_child:"), "note"])
    await expect(rows.locator("td:last-child")).to_have_text(["consumed", "not yet"])
    await page.locator(".children a").click()
    await expect(page.locator("h1 .status")).to_have_text("completed")
    await page.get_by_role("link", name=f"Job {job.id}", exact=True).click()
    await expect(page.get_by_role("heading", name=f"Job {job.id}")).to_be_visible()


async def test_retry_and_cancel_need_a_confirmation_and_then_happen(
    dashboard: Dashboard,
) -> None:
    from playwright.async_api import expect

    jobs = dashboard.jobs
    failed = await failed_workflow(jobs)
    page = await dashboard.page()
    await page.goto(dashboard.url(f"/jobs/{failed.id}"))

    await page.get_by_role("button", name="Retry", exact=True).click()
    await page.locator("#confirm-dialog").get_by_role("button", name="Keep as is").click()
    await expect(page.locator("h1 .status")).to_have_text("failed")

    await confirm(page, "Retry")
    await expect(page.locator(".flash")).to_have_text(f"Job {failed.id} will run again.")
    await expect(page.locator("h1 .status")).to_have_text("queued")

    await confirm(page, "Cancel")
    await expect(page.locator(".flash")).to_have_text(f"Job {failed.id} is cancelled.")
    await expect(page.locator("h1 .status")).to_have_text("cancelled")
    stored = await jobs.get(failed.id)
    assert stored is not None and stored.status == "cancelled"


async def test_a_bulk_action_changes_every_job_matching_the_filter(dashboard: Dashboard) -> None:
    from playwright.async_api import expect

    jobs = dashboard.jobs
    later = jobs.clock() + timedelta(hours=1)
    waiting = [
        await jobs.queue(task="send-email", input={"n": n}, wait_until=later) for n in range(4)
    ]
    other = await jobs.queue(task="resize-image", input={}, wait_until=later, queue="media")
    page = await dashboard.page()
    await page.goto(dashboard.url("/jobs?status=waiting&queue=default"))
    await expect(page.locator("tr[data-job]")).to_have_count(4)
    await confirm(page, "Cancel all")
    await expect(page.locator(".flash")).to_have_text("4 jobs cancelled.")
    await expect(page.locator(".empty")).to_contain_text("No jobs match this filter")
    statuses = [(await jobs.get(job.id)).status for job in [*waiting, other]]  # type: ignore[union-attr]
    assert statuses == ["cancelled"] * 4 + ["waiting"]


async def test_a_job_queued_while_the_list_is_open_appears_without_a_reload(
    dashboard: Dashboard,
) -> None:
    from playwright.async_api import expect

    jobs = dashboard.jobs
    await jobs.queue(task="send-email", input={"to": "first"})
    page = await dashboard.page()
    await page.goto(dashboard.url("/jobs"))
    await expect(page.locator("tr[data-job]")).to_have_count(1)
    loads: list[Any] = []
    page.on("load", lambda loaded: loads.append(loaded))

    job = await jobs.queue(task="resize-image", input={}, queue="media")

    row = page.locator(f'tr[data-job="{job.id}"]')
    await expect(row).to_be_visible(timeout=10_000)
    await expect(row).to_have_class(re.compile("fresh"))
    await expect(row.locator(".status")).to_have_text("queued")
    assert loads == []  # the same document all along


def test_without_chromium_the_browser_tests_skip_unless_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(chrome, "CANDIDATES", ())
    monkeypatch.setattr(chrome.shutil, "which", lambda name: None)
    monkeypatch.delenv(chrome.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="browser tests skipped: no Chromium found"):
        chrome.chromium()
    monkeypatch.setenv(chrome.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="ASYNCJOBS_REQUIRE_BROWSER is set but no"):
        chrome.chromium()
