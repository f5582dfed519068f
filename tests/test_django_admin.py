"""The jobs in Django's admin and ``manage.py asyncjobs``, in process, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.contrib.admin import AdminSite
from django.core.management import CommandError, call_command
from django.test import Client, override_settings

from asyncjobs.integrations.django.databases import django_identity, url_identity
from tests import django_work as work
from tests.django_site import BACKENDS, Site, make_jobs, open_site

OWN_DATABASE = make_jobs("sqlite:///somewhere-else.db")
CHANGELIST = "/admin/asyncjobs/job/"


@pytest.fixture(params=BACKENDS)
def site(request: pytest.FixtureRequest) -> Iterator[Site]:
    with open_site(request.param, request.config) as opened:
        yield opened


@pytest.fixture
def staff(site: Site) -> Client:
    from django.contrib.auth.models import User

    user = User.objects.filter(username="admin").first()
    user = user or User.objects.create_superuser("admin", "admin@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


def ids_listed(page: Any) -> list[int]:
    return [row.pk for row in page.context["cl"].result_list]


def test_the_changelist_lists_jobs_with_filters(site: Site, staff: Client) -> None:
    added = work.add.enqueue(1)
    shouted = work.shout.enqueue("x")
    refused = work.refuse.enqueue("r")
    plain = site.call(site.jobs.queue, task="plain", meta={"keep_on_complete": True})
    site.run()
    site.run()  # refuse: its retry fails too
    ids = [int(added.id), int(shouted.id), int(refused.id), plain.id]
    page = staff.get(CHANGELIST)
    assert page.status_code == 200
    assert sorted(ids_listed(page)) == sorted(ids)
    filters = {
        "status=completed": [int(added.id), plain.id],
        "status=failed": [int(refused.id)],
        "status=queued": [int(shouted.id)],
        "queue=emails": [int(shouted.id)],
        "slug=plain": [plain.id],
        "slug=django-task": [int(added.id), int(shouted.id), int(refused.id)],
    }
    for query, expected in filters.items():
        assert sorted(ids_listed(staff.get(f"{CHANGELIST}?{query}"))) == sorted(expected), query


def test_the_job_page_shows_the_step_log(site: Site, staff: Client) -> None:
    result = work.refuse.enqueue("out of tea")
    site.run()
    site.run()
    page = staff.get(f"{CHANGELIST}{result.id}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Step log" in text and "out of tea" in text and "<td>failed</td>" in text
    assert "tests.django_work.refuse" in text  # the input
    assert 'name="_save"' not in text  # read-only


def test_retry_and_cancel_actions_go_through_the_jobs_api(site: Site, staff: Client) -> None:
    failed = work.refuse.enqueue("r")
    site.run()
    site.run()
    waiting = work.add.enqueue(1)
    said = []
    for action, job_ids in (("retry_jobs", [failed.id]), ("cancel_jobs", [waiting.id])):
        data = {"action": action, "_selected_action": job_ids}
        page = staff.post(CHANGELIST, data, follow=True)
        said += [str(message) for message in page.context["messages"]]
    assert said == ["Retried 1 of 1 jobs.", "Cancelled 1 of 1 jobs."]
    assert site.job(failed.id).status == "queued"  # runnable again, its log kept
    assert site.job(waiting.id).status == "cancelled"


def test_an_action_reports_the_jobs_it_could_not_change(site: Site, staff: Client) -> None:
    done = work.add.enqueue(1)
    site.run()
    page = staff.post(
        CHANGELIST, {"action": "retry_jobs", "_selected_action": [done.id]}, follow=True
    )
    texts = [str(m) for m in page.context["messages"]]
    assert texts == [
        "Retried 0 of 1 jobs.",
        f"Not retried: {done.id} (not in a state that allows it).",
    ]


def test_jobs_cannot_be_added_edited_or_deleted(site: Site, staff: Client) -> None:
    assert staff.get(f"{CHANGELIST}add/").status_code == 403
    result = work.add.enqueue(1)
    assert staff.post(f"{CHANGELIST}{result.id}/delete/").status_code == 403
    assert staff.post(f"{CHANGELIST}{result.id}/change/", {"queue": "x"}).status_code == 403
    assert site.job(result.id).queue == "default"


def test_the_admin_shows_jobs_only_when_their_database_is_djangos(site: Site) -> None:
    from asyncjobs.integrations.django import admin as jobs_admin

    assert jobs_admin.register(AdminSite("with"))
    with override_settings(ASYNCJOBS={"JOBS": "tests.test_django_admin:OWN_DATABASE"}):
        assert not jobs_admin.register(AdminSite("own"))
    with override_settings(ASYNCJOBS={}):
        assert not jobs_admin.register(AdminSite("none"))


@pytest.mark.parametrize(
    ("url", "config", "same"),
    [
        ("sqlite:///db.sqlite3", {"ENGINE": "x.sqlite3", "NAME": "db.sqlite3"}, True),
        ("sqlite+aiosqlite:////tmp/a.db", {"ENGINE": "x.sqlite3", "NAME": "/tmp/./a.db"}, True),
        ("sqlite:///a.db", {"ENGINE": "django.db.backends.sqlite3", "NAME": "b.db"}, False),
        ("sqlite+aiosqlite://", {"ENGINE": "x.sqlite3", "NAME": ":memory:"}, False),
        ("postgresql://u:p@db:5433/shop", {"ENGINE": "django.db.backends.postgresql",
                                            "HOST": "db", "PORT": "5433", "NAME": "shop"}, True),
        ("postgres://u@localhost/shop", {"ENGINE": "django.db.backends.postgresql",
                                          "HOST": "", "PORT": "", "NAME": "shop"}, True),
        ("postgresql+asyncpg://u@db/shop", {"ENGINE": "django.db.backends.postgresql",
                                             "HOST": "db", "NAME": "other"}, False),
        ("postgresql://u@db/shop", {"ENGINE": "django.db.backends.mysql", "NAME": "shop"}, False),
    ],
)  # fmt: skip
def test_a_django_database_is_the_same_file_or_server_and_name(
    url: str, config: dict[str, str], same: bool
) -> None:
    identity = url_identity(url)
    assert (identity is not None and identity == django_identity(config)) is same


# -- manage.py asyncjobs, through call_command ----------------------------------------------


def asyncjobs_command(*args: str) -> str:
    out = StringIO()
    call_command("asyncjobs", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_the_command_runs_the_cli_with_the_settings_jobs(site: Site) -> None:
    result = work.add.enqueue(40, 2)
    listed = json.loads(asyncjobs_command("jobs", "list", "--json"))
    assert [job["id"] for job in listed] == [int(result.id)]
    assert "Ran 1 job on queue 'default': 1 succeeded." in asyncjobs_command("run")
    assert work.add.get_result(result.id).return_value == 42
    shown = json.loads(asyncjobs_command("--app", site.spec, "jobs", "show", result.id, "--json"))
    assert shown["status"] == "completed"


def test_a_failing_command_is_a_command_error_with_its_status(site: Site) -> None:
    err = StringIO()
    with pytest.raises(CommandError, match="status 1") as raised:
        call_command("asyncjobs", "jobs", "show", "999999", stdout=StringIO(), stderr=err)
    assert raised.value.returncode == 1
    assert "no job with id 999999" in err.getvalue()


def test_the_command_needs_a_module_path_for_the_jobs(site: Site) -> None:
    with (
        override_settings(ASYNCJOBS={"JOBS": site.jobs}),
        pytest.raises(CommandError, match="module:attr"),
    ):
        asyncjobs_command("jobs", "list")
    url = site.jobs.database_url
    assert "No jobs." in asyncjobs_command("jobs", "list", "--database-url", url)
    err = StringIO()
    with pytest.raises(CommandError):
        call_command("asyncjobs", "--app", "tests.nowhere:jobs", "jobs", "list", stderr=err)
    assert err.getvalue().startswith("asyncjobs: error: cannot import app module 'tests.nowhere'")


def _dashboard_request(client: Client | None) -> Any:
    from types import SimpleNamespace

    from django.conf import settings

    if client is None:
        return SimpleNamespace(headers={"cookie": "other=1"})
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    return SimpleNamespace(headers={"cookie": f"{settings.SESSION_COOKIE_NAME}={session}"})


def test_staff_user_approves_signed_in_staff_members_only(site: Site, staff: Client) -> None:
    from asgiref.sync import async_to_sync
    from django.contrib.auth.models import User

    from asyncjobs.integrations.django import staff_user

    member = User.objects.filter(username="member").first()
    member = member or User.objects.create_user("member", "member@example.com", "pw")
    customer = Client()
    customer.force_login(member)
    approved = [
        async_to_sync(staff_user)(request=_dashboard_request(client))
        for client in (staff, customer, None)
    ]
    assert approved == [True, False, False]
