"""Generated hostile input: the endpoints never answer 500 and a refused request runs nothing;
``queue()`` either stores the value as JSON reads it back or refuses it and stores nothing."""

from __future__ import annotations

import atexit
import json
import math
import shutil
import tempfile
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

import asyncjobs

MakeJobs = Callable[..., asyncjobs.Jobs]

# Hypothesis caches what it reads from the tests' source beside them, once they are collected;
# a temporary folder, removed at exit, leaves nothing behind.
_HOME = tempfile.mkdtemp(prefix="asyncjobs-hypothesis-")
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
set_hypothesis_home_dir(_HOME)
SECRET = "fuzz-secret"
FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,  # leaves no example database behind
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@asyncjobs.task("plain")
async def plain() -> None:
    return None


@asyncjobs.task("ticker", schedule=[asyncjobs.Schedule(cron="* * * * *")])
async def ticker() -> None:
    return None


# -- the endpoints -------------------------------------------------------------------------

NAMES = ["queue", "limit", "allQueues", "disableScheduling", "silent", "Limit", "allqueues", ""]
ODD_TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
VALUES = st.one_of(
    st.sampled_from(["true", "false", "True", "1", "yes", "", " ", "default", "-1", "0"]),
    st.integers(-5, 20_000).map(str),
    st.integers(1, 6000).map(lambda digits: "9" * digits),
    ODD_TEXT,
)
ESCAPES = st.sampled_from(["%00", "%ff", "%ED%A0%80", "%", "%2", "&", "=", "+", "%26", ";"])
PAIR = st.tuples(st.one_of(st.sampled_from(NAMES), ODD_TEXT), VALUES).map(
    lambda pair: f"{quote(pair[0])}={quote(pair[1])}"
)
QUERY = st.lists(st.one_of(PAIR, ESCAPES), max_size=6).map("&".join).map(str.encode)
RAW_QUERY = st.binary(max_size=40)
AUTHORIZATION = st.one_of(
    st.sampled_from([f"Bearer {SECRET}", f"bearer  {SECRET} ", f"Bearer {SECRET}x", "Bearer"]),
    ODD_TEXT.map(lambda text: f"Bearer {text}"),
    st.binary(max_size=20).map(lambda raw: raw.decode("latin-1")),
)
HEADERS = st.one_of(
    st.just([(b"authorization", f"Bearer {SECRET}".encode())]),  # often let in: parameters count
    st.lists(
        st.tuples(st.sampled_from(["authorization", "x-allow", "host", "x-\x00"]), AUTHORIZATION),
        max_size=3,
    ).map(lambda pairs: [(k.encode(), v.encode("latin-1", "replace")) for k, v in pairs]),
)


async def answer(app: Any, path: str, query: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    """The status ``app`` answers a GET with this raw query string and these headers."""
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "root_path": "",
        "query_string": query,
        "headers": headers,
        "client": ("127.0.0.1", 50000),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert sent[-1]["type"] == "http.response.body"
    return int(sent[0]["status"])


async def snapshot(jobs: asyncjobs.Jobs) -> list[tuple[int, str, int]]:
    return [(job.id, job.status, job.total_tried) for job in await jobs.find(order="id")]


@pytest.fixture
def guarded(make_jobs: MakeJobs) -> asyncjobs.Jobs:
    """Shared by every example of a test: endpoints with a secret and an ``Access.run``."""

    def allow(request: Any) -> Any:
        return request.headers.get("x-allow")  # a string is never an approval

    return make_jobs(tasks=[plain, ticker], secret=SECRET, access=asyncjobs.Access(run=allow))


@pytest.mark.timeout(120)
@FUZZ
@given(
    path=st.sampled_from(["/run", "/handle-schedules"]),
    query=st.one_of(QUERY, RAW_QUERY),
    headers=HEADERS,
)
async def test_the_endpoints_never_answer_500_and_a_refused_request_runs_nothing(
    guarded: asyncjobs.Jobs, path: str, query: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    if not await guarded.find(where={"status": "queued"}, limit=1):
        await guarded.queue(task="plain")
    before = await snapshot(guarded)
    status = await answer(guarded.asgi_app(), path, query, headers)
    event(f"status {status}")
    assert status in (200, 400, 401), (path, query, headers)
    if status != 200:
        assert await snapshot(guarded) == before


# -- queue() -------------------------------------------------------------------------------

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(st.characters(), max_size=8),  # NUL and lone surrogates included
)
ODD_OBJECTS = st.one_of(
    st.sampled_from([b"bytes", frozenset({1, 2}), complex(1, 2)]),
    st.builds(lambda: 10**5000),  # built on demand: hypothesis cannot print it
)
KEYS = st.one_of(st.text(st.characters(), max_size=6), st.sampled_from([1, None, "1", "k"]))
VALUES_TREE = st.recursive(
    st.one_of(SCALARS, ODD_OBJECTS),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(KEYS, inner, max_size=4),
    ),
    max_leaves=12,
)
DEEP = st.one_of(st.integers(95, 105), st.integers(1, 3000)).map(lambda levels: _nested(levels))


def _nested(levels: int) -> dict[str, Any]:
    """Dicts and lists nested ``levels`` deep, built without recursion."""
    value: Any = {}
    for level in range(levels - 1):
        value = [value] if level % 2 else {"v": value}
    return value if isinstance(value, dict) else {"v": value}


def _alike(stored: Any, sent: Any) -> bool:
    """Whether ``stored`` is ``sent`` as JSON reads it back (numbers as JSON numbers)."""
    if isinstance(sent, bool) or sent is None or isinstance(sent, str):
        return bool(stored == sent and type(stored) is type(sent))
    if isinstance(sent, int | float):
        return not isinstance(stored, bool) and math.isclose(stored, sent, rel_tol=1e-15)
    if isinstance(sent, dict):
        return stored.keys() == sent.keys() and all(_alike(stored[k], v) for k, v in sent.items())
    return len(stored) == len(sent) and all(map(_alike, stored, sent))


@pytest.fixture
def plain_jobs(make_jobs: MakeJobs) -> asyncjobs.Jobs:
    return make_jobs(tasks=[plain])


@pytest.mark.timeout(120)
@FUZZ
@given(
    value=st.one_of(
        st.dictionaries(KEYS, VALUES_TREE, max_size=4),
        st.dictionaries(st.text(max_size=4), VALUES_TREE, max_size=4),
        DEEP,
    ),
    queue=st.one_of(
        st.none(),
        st.sampled_from(["a\x00b", "\ud800", "q" * 201, " ", "mail"]),
        st.text(st.characters(), min_size=1, max_size=5),
    ),
)
async def test_queue_stores_what_json_reads_back_or_refuses_and_stores_nothing(
    plain_jobs: asyncjobs.Jobs, value: Any, queue: str | None
) -> None:
    before = len(await plain_jobs.find(limit=10_000))
    try:
        job = await plain_jobs.queue(task="plain", input=value, meta=value, queue=queue)
    except ValueError as exc:  # asyncjobs.ValidationError included
        event(f"refused: {str(exc).split(',')[0][:40]}")
        assert len(await plain_jobs.find(limit=10_000)) == before
        return
    event("stored")
    stored = await plain_jobs.get(job.id)
    assert stored is not None
    expected = json.loads(json.dumps(value))
    assert _alike(stored.input, expected) and _alike(stored.meta, expected)
