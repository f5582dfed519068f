"""The dashboard over HTTP, in process: access, CSRF, confirmations, actions, pages, escaping."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest

import asyncjobs
from tests.conftest import FakeClock, run_until_idle

SECRET = "dashboard-s3cret"
BASIC = ("admin", SECRET)

MakeJobs = Callable[..., asyncjobs.Jobs]


@pytest.fixture
def backend() -> str:
    # The pages only present what storage/dashboard.py reads; its suite runs on both databases.
    return "sqlite"


@asyncjobs.task("send-email")
async def send_email(*, input: dict[str, Any]) -> dict[str, Any]:
    if input.get("fail"):
        raise ConnectionError("mail server not answering")
    return {"sent_to": input.get("to")}


async def charge(*, input: dict[str, Any]) -> None:
    raise ValueError(f"card declined for order {input['order']}")


@asyncjobs.workflow("onboard-user")
async def onboard_user(*, input: dict[str, Any], tasks: Any, inline_task: Any) -> dict[str, Any]:
    await tasks["send-email"]("welcome", input={"to": input["email"]})
    await inline_task("charge", task=charge, input={"order": 7})
    return {"ok": True}


@asyncjobs.task("tidy-up", schedule=asyncjobs.Schedule("*/5 * * * *", queue="maintenance"))
async def tidy_up() -> None:
    return None


@asyncjobs.workflow("review")
async def review(*, run_child: Any, wait_for_signal: Any) -> dict[str, Any]:
    await run_child("mail", task="send-email", input={"to": "ada@example.com"})
    return {"approved": await wait_for_signal("approval", "approve")}


def make(make_jobs: MakeJobs, **options: Any) -> asyncjobs.Jobs:
    options.setdefault("secret", SECRET)
    return make_jobs(tasks=[send_email, tidy_up], workflows=[onboard_user, review], **options)


def client(jobs: asyncjobs.Jobs, auth: Any = BASIC, root_path: str = "") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=jobs.dashboard_app(), root_path=root_path)
    return httpx.AsyncClient(transport=transport, base_url="http://dash.test", auth=auth)


async def csrf(http: httpx.AsyncClient, path: str = "/jobs") -> str:
    page = await http.get(path)
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert found, page.text
    return found[1]


# -- access ---------------------------------------------------------------------------------


@pytest.mark.parametrize("auth", [None, ("admin", "wrong"), ("", "")])
async def test_missing_or_wrong_credentials_get_401_asking_for_basic(
    make_jobs: MakeJobs, auth: Any
) -> None:
    async with client(make(make_jobs), auth=auth) as http:
        for path in ("/", "/jobs", "/jobs/1", "/schedules", "/static/app.css"):
            answer = await http.get(path)
            assert answer.status_code == 401, path
            assert answer.headers["www-authenticate"].startswith("Basic ")


async def test_the_secret_as_basic_password_opens_every_page(make_jobs: MakeJobs) -> None:
    jobs = make(make_jobs)
    job = await jobs.queue(task="send-email", input={"to": "ada@example.com"})
    async with client(jobs) as http:
        for path in ("/", "/jobs", f"/jobs/{job.id}", "/schedules"):
            answer = await http.get(path)
            assert answer.status_code == 200, path
            assert answer.headers["content-type"].startswith("text/html")


async def test_with_neither_access_nor_secret_every_request_gets_401(make_jobs: MakeJobs) -> None:
    jobs = make(make_jobs, secret=None, access=asyncjobs.Access(run=lambda request: True))
    async with client(jobs) as http:
        assert (await http.get("/")).status_code == 401


async def test_access_dashboard_approves_viewers_with_the_request(make_jobs: MakeJobs) -> None:
    seen: list[Any] = []

    def viewer(request: Any) -> bool:
        seen.append(request)
        return request.headers.get("x-user") == "ada"

    jobs = make(make_jobs, secret=None, access=asyncjobs.Access(dashboard=viewer))
    async with client(jobs, auth=None) as http:
        assert (await http.get("/", headers={"x-user": "bob"})).status_code == 401
        assert (await http.get("/", headers={"x-user": "ada"})).status_code == 200
    assert seen[-1].query_params is not None and seen[-1].client is not None


async def test_an_access_callable_that_raises_refuses(make_jobs: MakeJobs) -> None:
    def broken(request: Any) -> bool:
        raise RuntimeError("session store down")

    jobs = make(make_jobs, secret=None, access=asyncjobs.Access(dashboard=broken))
    async with client(jobs, auth=None) as http:
        assert (await http.get("/")).status_code == 401


async def test_a_viewer_without_run_permission_gets_403_and_nothing_changes(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    access = asyncjobs.Access(dashboard=lambda request: True, run=lambda request: False)
    jobs = make(make_jobs, secret=None, access=access)
    job = await jobs.queue(task="send-email", input={"fail": True})
    await run_until_idle(jobs)
    async with client(jobs, auth=None) as http:
        token = await csrf(http)
        answer = await http.post(f"/jobs/{job.id}/retry", data={"csrf": token, "confirmed": "1"})
        bulk = await http.post(
            "/jobs/retry", data={"csrf": token, "confirmed": "1", "status": "failed"}
        )
    assert (answer.status_code, bulk.status_code) == (403, 403)
    assert "nothing changed" in answer.text
    assert (await jobs.get(job.id)).status == "failed"  # type: ignore[union-attr]


async def test_access_cancel_allows_cancel_but_not_retry(make_jobs: MakeJobs) -> None:
    access = asyncjobs.Access(dashboard=lambda request: True, cancel=lambda request: True)
    jobs = make(make_jobs, secret=None, access=access)
    job = await jobs.queue(task="send-email", input={})
    async with client(jobs, auth=None) as http:
        token = await csrf(http)
        form = {"csrf": token, "confirmed": "1"}
        assert (await http.post(f"/jobs/{job.id}/run", data=form)).status_code == 403
        assert (await http.post(f"/jobs/{job.id}/cancel", data=form)).status_code == 303
    assert (await jobs.get(job.id)).status == "cancelled"  # type: ignore[union-attr]


# -- CSRF and confirmation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "headers"),
    [
        ({"confirmed": "1"}, {}),
        ({"confirmed": "1", "csrf": "x" * 43}, {}),
        ("token", {"origin": "https://evil.example"}),
    ],
    ids=["no token", "wrong token", "other origin"],
)
async def test_an_action_without_this_dashboards_token_gets_403(
    make_jobs: MakeJobs, form: Any, headers: dict[str, str]
) -> None:
    jobs = make(make_jobs)
    job = await jobs.queue(task="send-email", input={})
    async with client(jobs) as http:
        token = await csrf(http)
        data = {"csrf": token, "confirmed": "1"} if form == "token" else form
        answer = await http.post(f"/jobs/{job.id}/cancel", data=data, headers=headers)
    assert answer.status_code == 403
    assert (await jobs.get(job.id)).status == "queued"  # type: ignore[union-attr]


async def test_an_unconfirmed_action_asks_first_and_changes_nothing(make_jobs: MakeJobs) -> None:
    jobs = make(make_jobs)
    job = await jobs.queue(task="send-email", input={})
    async with client(jobs) as http:
        token = await csrf(http)
        asked = await http.post(f"/jobs/{job.id}/cancel", data={"csrf": token})
        assert asked.status_code == 200
        assert f"Cancel job {job.id}?" in asked.text
        assert 'name="confirmed" value="1"' in asked.text
        assert (await jobs.get(job.id)).status == "queued"  # type: ignore[union-attr]
        done = await http.post(f"/jobs/{job.id}/cancel", data={"csrf": token, "confirmed": "1"})
        assert done.status_code == 303
        assert done.headers["location"] == f"/jobs/{job.id}"
        page = await http.get(done.headers["location"])
    assert f"Job {job.id} is cancelled." in page.text
    assert (await jobs.get(job.id)).status == "cancelled"  # type: ignore[union-attr]


# -- actions --------------------------------------------------------------------------------


async def act(http: httpx.AsyncClient, path: str, **fields: str) -> httpx.Response:
    token = await csrf(http)
    return await http.post(path, data={"csrf": token, "confirmed": "1", **fields})


async def test_retry_makes_a_failed_job_runnable_again(make_jobs: MakeJobs) -> None:
    jobs = make(make_jobs)
    job = await jobs.queue(task="send-email", input={"fail": True})
    await run_until_idle(jobs)
    async with client(jobs) as http:
        assert (await act(http, f"/jobs/{job.id}/retry")).status_code == 303
    assert (await jobs.get(job.id)).status == "queued"  # type: ignore[union-attr]


async def test_run_now_brings_a_waiting_job_forward(make_jobs: MakeJobs, clock: FakeClock) -> None:
    jobs = make(make_jobs)
    job = await jobs.queue(task="send-email", input={}, wait_until=clock() + timedelta(hours=1))
    async with client(jobs) as http:
        await act(http, f"/jobs/{job.id}/run")
        again = await http.get(f"/jobs/{job.id}")
    assert f"Job {job.id} is due now." in again.text
    stored = await jobs.get(job.id)
    assert stored is not None and stored.status == "queued" and stored.wait_until == clock()


async def test_actions_on_jobs_in_the_wrong_state_change_nothing(make_jobs: MakeJobs) -> None:
    jobs = make(make_jobs)
    job = await jobs.queue(task="send-email", input={})
    await run_until_idle(jobs)
    async with client(jobs) as http:
        for action in ("retry", "cancel", "run"):
            await act(http, f"/jobs/{job.id}/{action}")
            page = await http.get(f"/jobs/{job.id}")
            assert "nothing changed" in page.text, action
    assert (await jobs.get(job.id)).status == "completed"  # type: ignore[union-attr]


async def test_bulk_retry_retries_every_failed_job_matching_the_filter(
    make_jobs: MakeJobs,
) -> None:
    jobs = make(make_jobs)
    failing = [await jobs.queue(task="send-email", input={"fail": True}) for _ in range(3)]
    other = await jobs.queue(task="send-email", input={"fail": True}, queue="other")
    await run_until_idle(jobs)
    await run_until_idle(jobs, queue="other")
    async with client(jobs) as http:
        token = await csrf(http)
        asked = await http.post(
            "/jobs/retry", data={"csrf": token, "status": "failed", "queue": "default"}
        )
        assert "every job matching status failed, queue default (3 now)" in asked.text
        done = await act(http, "/jobs/retry", status="failed", queue="default")
        assert done.headers["location"] == "/jobs?status=failed&queue=default"
        page = await http.get(done.headers["location"])
    assert "3 jobs will run again." in page.text
    statuses = {job.id: (await jobs.get(job.id)).status for job in [*failing, other]}  # type: ignore[union-attr]
    assert statuses == {**{job.id: "queued" for job in failing}, other.id: "failed"}


async def test_bulk_cancel_and_run_now_follow_the_slug_filter(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    jobs = make(make_jobs)
    later = clock() + timedelta(hours=1)
    emails = [await jobs.queue(task="send-email", input={}, wait_until=later) for _ in range(2)]
    flow = await jobs.queue(workflow="onboard-user", input={"email": "a"}, wait_until=later)
    async with client(jobs) as http:
        await act(http, "/jobs/run", slug="onboard-user")
        await act(http, "/jobs/cancel", slug="send-email")
    assert [(await jobs.get(j.id)).status for j in emails] == ["cancelled"] * 2  # type: ignore[union-attr]
    assert (await jobs.get(flow.id)).status == "queued"  # type: ignore[union-attr]


async def test_bulk_actions_need_a_filter(make_jobs: MakeJobs) -> None:
    jobs = make(make_jobs)
    job = await jobs.queue(task="send-email", input={})
    async with client(jobs) as http:
        answer = await act(http, "/jobs/cancel")
    assert answer.status_code == 400
    assert (await jobs.get(job.id)).status == "queued"  # type: ignore[union-attr]


async def test_unknown_actions_are_404(make_jobs: MakeJobs) -> None:
    async with client(make(make_jobs)) as http:
        assert (await act(http, "/jobs/1/explode")).status_code == 404
        assert (await act(http, "/jobs/explode", status="failed")).status_code == 404


# -- pages ----------------------------------------------------------------------------------


async def test_input_is_escaped_everywhere(make_jobs: MakeJobs) -> None:
    jobs = make(make_jobs)
    evil = '<script>alert("x")</script>'
    job = await jobs.queue(task="send-email", input={"to": evil, "fail": True}, queue="q<b>")
    await run_until_idle(jobs, queue="q<b>")
    async with client(jobs) as http:
        pages = [await http.get(p) for p in ("/", "/jobs", f"/jobs/{job.id}")]
        pages.append(await http.get("/jobs", params={"slug": evil}))
    for page in pages:
        assert "<script>alert" not in page.text
        assert "<b>" not in page.text
    assert r"&lt;script&gt;alert(\&#34;x\&#34;)&lt;/script&gt;" in pages[2].text


async def test_the_job_page_of_a_failed_workflow_shows_error_steps_and_nesting(
    make_jobs: MakeJobs,
) -> None:
    jobs = make(make_jobs)
    job = await jobs.queue(workflow="onboard-user", input={"email": "ada@example.com"})
    await run_until_idle(jobs)
    async with client(jobs) as http:
        page = (await http.get(f"/jobs/{job.id}")).text
    assert "ValueError: card declined for order 7" in page
    assert "Traceback (most recent call last)" in page
    assert re.search(r"send-email</span> <span class=\"task-id\">#welcome", page)
    assert re.search(r"inline</span> <span class=\"task-id\">#charge", page)
    assert page.count('class="step ') == 2
    assert "ada@example.com" in page


async def test_the_job_page_shows_signals_parent_and_children(make_jobs: MakeJobs) -> None:
    jobs = make(make_jobs)
    job = await jobs.queue(workflow="review")
    await run_until_idle(jobs)  # the child ran; the parent now waits for its approval
    (child,) = [j for j in await jobs.find() if j.parent_id == job.id]
    assert await jobs.signal(job.id, "note", {"text": "<b>soon</b>"})
    async with client(jobs) as http:
        page = (await http.get(f"/jobs/{job.id}")).text
        child_page = (await http.get(f"/jobs/{child.id}")).text
    signals = page[page.index('id="signals"') :]
    rows = re.findall(r'<tr class="(\w+)">\s*<td><code class="topic">([^<]+)</code>', signals)
    assert rows == [("consumed", f"run_child:{child.id}"), ("pending", "note")]
    assert "&lt;b&gt;soon&lt;/b&gt;" in signals and "<b>soon" not in page
    assert "not yet" in signals and "consumed</span>" in signals
    linked = f'href="/jobs/{child.id}">Job {child.id}</a> <span class="status s-completed"'
    assert linked in page
    assert f'<dt>Parent</dt><dd><a href="/jobs/{job.id}">Job {job.id}</a>' in child_page
    assert 'id="signals"' not in child_page


async def test_the_list_filters_and_pages_by_id(make_jobs: MakeJobs) -> None:
    jobs = make(make_jobs)
    made = [await jobs.queue(task="send-email", input={"n": n}) for n in range(55)]
    async with client(jobs) as http:
        first = (await http.get("/jobs")).text
        older = re.search(r'href="/jobs\?before=(\d+)" rel="next"', first)
        assert older, first
        second = (await http.get(f"/jobs?before={older[1]}")).text
        newer = re.search(r'href="/jobs\?after=(\d+)" rel="prev"', second)
        one = (await http.get(f"/jobs?id={made[3].id}")).text
    assert first.count("data-job=") == 50 and second.count("data-job=") == 5
    assert newer and int(newer[1]) == made[4].id
    assert one.count("data-job=") == 1


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"status": "exploded"}, "unknown status"),
        ({"id": "abc"}, "id must be a job id"),
        ({"before": "-1"}, "before must be a job id"),
        ({"queue": "q" * 300}, "queue is longer than"),
    ],
)
async def test_a_bad_filter_is_a_400_naming_it(
    make_jobs: MakeJobs, params: dict[str, str], message: str
) -> None:
    async with client(make(make_jobs)) as http:
        answer = await http.get("/jobs", params=params)
    assert answer.status_code == 400
    assert message in answer.text


async def test_a_missing_job_or_page_is_404(make_jobs: MakeJobs) -> None:
    async with client(make(make_jobs)) as http:
        assert (await http.get("/jobs/999")).status_code == 404
        assert (await http.get("/nowhere")).status_code == 404
        assert (await http.get("/static/nothing.js")).status_code == 404


async def test_the_overview_counts_by_queue_and_status(make_jobs: MakeJobs) -> None:
    jobs = make(make_jobs)
    for _ in range(2):
        await jobs.queue(task="send-email", input={"fail": True})
    await jobs.queue(task="send-email", input={}, queue="mail")
    await run_until_idle(jobs)
    async with client(jobs) as http:
        page = (await http.get("/")).text
    counts = re.findall(
        r'href="/jobs\?queue=(\w+)&amp;status=(\w+)">\s*<span class="count-label">'
        r'<span class="dot"></span>\w+</span>\s*<strong class="count-value">([\d,+]+)',
        page,
    )
    found = {(queue, status): value for queue, status, value in counts if value != "0"}
    assert found == {("default", "failed"): "2", ("mail", "queued"): "1"}
    assert "maintenance" in page  # a queue a schedule names, still empty


async def test_the_schedules_page_shows_cron_queue_and_ticks(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    jobs = make(make_jobs)
    await jobs.handle_schedules(queue="maintenance")
    async with client(jobs) as http:
        page = (await http.get("/schedules")).text
    assert "*/5 * * * *" in page and "maintenance" in page
    assert 'datetime="2026-01-05T12:05:00.000+00:00"' in page  # the next tick
    assert "not yet" not in page  # handle_schedules recorded a last tick


async def test_a_live_request_gets_only_the_live_part_and_the_server_time(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    jobs = make(make_jobs)
    await jobs.queue(task="send-email", input={})
    async with client(jobs) as http:
        answer = await http.get("/jobs", headers={"X-Asyncjobs-Live": "1"})
    assert answer.status_code == 200
    assert "<html" not in answer.text and "data-job=" in answer.text
    assert answer.headers["x-asyncjobs-now"] == "2026-01-05T12:00:00.000+00:00"
    assert answer.headers["cache-control"] == "no-store"


async def test_links_and_cookies_follow_the_mount_point(make_jobs: MakeJobs) -> None:
    async with client(make(make_jobs), root_path="/admin/jobs") as http:
        page = await http.get("/admin/jobs/")
    assert 'href="/admin/jobs/schedules"' in page.text
    assert 'src="/admin/jobs/static/app.js?v=' in page.text
    assert "Path=/admin/jobs" in page.headers["set-cookie"]


async def test_assets_are_served_with_their_type(make_jobs: MakeJobs) -> None:
    async with client(make(make_jobs)) as http:
        css = await http.get("/static/app.css?v=1")
        js = await http.get("/static/app.js")
    assert css.headers["content-type"].startswith("text/css")
    assert "immutable" in css.headers["cache-control"]
    assert "javascript" in js.headers["content-type"] and js.headers["cache-control"] == "no-cache"


async def test_a_database_that_does_not_answer_is_a_503(make_jobs: MakeJobs, tmp_path: Any) -> None:
    jobs = make(make_jobs, database_url=f"sqlite+aiosqlite:///{tmp_path}/missing/dir/x.db")
    async with client(jobs) as http:
        answer = await http.get("/")
    assert answer.status_code == 503


async def test_lifespan_starts_and_stops_jobs_when_served_alone(make_jobs: MakeJobs) -> None:
    from tests.lifespan import lifespan_messages

    jobs = make(make_jobs, auto_run=[])
    sent = await lifespan_messages(jobs.dashboard_app(), "startup", "shutdown")
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_import_asyncjobs_imports_neither_starlette_nor_jinja2() -> None:
    code = (
        "import sys, asyncjobs; "
        "print(sorted(m for m in ('starlette', 'jinja2') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_without_jinja2_the_dashboard_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [m for m in sys.modules if m.startswith("asyncjobs.dashboard.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "jinja2", None)
    jobs = asyncjobs.Jobs(database_url="sqlite+aiosqlite:///:memory:", auto_run=[])
    with pytest.raises(ImportError, match=r"needs jinja2: pip install 'asyncjobs\[dashboard\]'"):
        jobs.dashboard_app()


async def test_run_now_wakes_the_autorun_entries_of_this_process(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    from tests.servers import wait_until

    jobs = make(make_jobs, auto_run=[asyncjobs.AutoRun(cron="0 0 1 1 *")])
    job = await jobs.queue(task="send-email", input={}, wait_until=clock() + timedelta(hours=1))
    await jobs.start()
    async with client(jobs) as http:
        await act(http, f"/jobs/{job.id}/run")

    async def completed() -> bool:
        found = await jobs.get(job.id)
        return found is not None and found.status == "completed"

    await wait_until(completed, timeout=10, what="the job to run")


async def test_a_malformed_basic_header_gets_401(make_jobs: MakeJobs) -> None:
    async with client(make(make_jobs), auth=None) as http:
        for header in ("Basic !!!", "Basic " + "YWRtaW4=", "Bearer " + SECRET):
            assert (await http.get("/", headers={"Authorization": header})).status_code == 401


async def test_an_oversized_form_is_refused(make_jobs: MakeJobs) -> None:
    jobs = make(make_jobs)
    job = await jobs.queue(task="send-email", input={})
    async with client(jobs) as http:
        token = await csrf(http)
        big = {"csrf": token, "confirmed": "1", "padding": "x" * 20_000}
        assert (await http.post(f"/jobs/{job.id}/cancel", data=big)).status_code == 403
    assert (await jobs.get(job.id)).status == "queued"  # type: ignore[union-attr]


async def test_websockets_are_closed(make_jobs: MakeJobs) -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    await make(make_jobs).dashboard_app()({"type": "websocket", "path": "/"}, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]
