"""Fuzz the HTTP endpoints: hostile job ids and query strings, percent-encoded into
paths and queries, against the ASGI app and the Django and Flask adapters.

Whatever a client sends, the server answers one of the documented codes and
never a 5xx; a 400 is the short JSON error; an answer about a job carries that
job's record and no other's; an app that grants no access serves no record data;
and any valid id reads back through its percent-encoded path.
"""

from __future__ import annotations

import json
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote_from_bytes, unquote

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import jobstatus
import jobstatus.web
from jobstatus._record import MAX_JOB_ID_LENGTH, _is_control, validate_job_id
from jobstatus.stores import MemoryStore, SQLiteStore, Store
from jobstatus.web.core import PRIVATE_KEYS

from .._strategies import examples, ids
from ._support import events, put

pytestmark = pytest.mark.web

FUZZ = settings(
    max_examples=examples(200), suppress_health_check=[HealthCheck.function_scoped_fixture]
)
DOCUMENTED = {200, 400, 404, 405, 414}  # 501 and 503 need a store that cannot list or fails
MOUNTS = ("public", "private")


def _secret(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex}"


# Ids a router or a decoder might mistake for something else; all finished, so
# that an event stream for them ends after its first event.
SEEDED: dict[str, dict[str, Any]] = {
    "alpha": {"status": "completed", "secret": _secret("alpha")},
    "team/42": {"status": "completed", "secret": _secret("team")},
    "/lead": {"status": "completed", "secret": _secret("lead")},
    "x//y": {"status": "failed", "secret": _secret("xy")},
    "a%2Fb": {"status": "completed", "secret": _secret("pct")},
    "..": {"status": "completed", "secret": _secret("dots")},
    "é 😀,": {"status": "completed", "secret": _secret("uni")},
    "bad": {
        "status": "failed",
        "secret": _secret("bad"),
        "exception": {"class": "ValueError", "message": _secret("exception")},
        "serialized_job": {"args": [_secret("serialized")]},
    },
}
OWNER = {fields["secret"]: job_id for job_id, fields in SEEDED.items()}
NEVER_SERVED = [
    SEEDED["bad"]["exception"]["message"],
    SEEDED["bad"]["serialized_job"]["args"][0],
]


# -- the three servers, each with a public and a private mount ------------------------


@dataclass
class Reply:
    status: int
    content_type: str
    text: str


Send = Callable[[str, str], Reply]  # (method, URL under the server's root) -> reply


@dataclass
class Served:
    """One framework serving the store at /public (public=True) and /private (no access)."""

    store: Store
    send: Send

    def get(self, mount: str, url: str, method: str = "GET") -> Reply:
        return self.send(method, f"/{mount}{url}")


def _deny(request: Any, job_id: str, record: Any) -> bool:
    return False


MOUNT_OPTIONS: dict[str, dict[str, Any]] = {
    "public": {"public": True},
    "private": {"authorize": _deny},
}


class _AsServed:
    """Gives the app the path a server decodes from the request line.

    Starlette's TestClient unquotes httpx's already decoded path a second time
    (``/jobs/a%252Fb`` reaches the app as ``a/b``, not ``a%2Fb``); uvicorn
    unquotes the raw path once, as this does. Older TestClients (Starlette 0.38)
    also put the query string in ``raw_path``, which a server never does.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            raw_path = scope["raw_path"].split(b"?", 1)[0]
            scope = {**scope, "path": unquote(raw_path.decode("ascii"))}
        await self.app(scope, receive, send)


def _starlette(store: Store) -> Iterator[Send]:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TestClient's advice to install httpx2 instead
        from starlette.testclient import TestClient

    mounts = [
        Mount(f"/{name}", jobstatus.web.create_app(store=store, **options))
        for name, options in MOUNT_OPTIONS.items()
    ]
    with TestClient(_AsServed(Starlette(routes=mounts))) as client:

        def send(method: str, url: str) -> Reply:
            response = client.request(method, url)
            return Reply(
                response.status_code, response.headers.get("content-type", ""), response.text
            )

        yield send


def _flask(store: Store) -> Iterator[Send]:
    import flask

    import jobstatus.web.flask

    app = flask.Flask("jobstatus_fuzz")
    for name, options in MOUNT_OPTIONS.items():
        blueprint = jobstatus.web.flask.blueprint(store=store, name=name, **options)
        app.register_blueprint(blueprint, url_prefix=f"/{name}")
    client = app.test_client()

    def send(method: str, url: str) -> Reply:
        response = client.open(url, method=method)
        text = response.get_data(as_text=True)
        response.close()
        return Reply(response.status_code, response.headers.get("content-type", ""), text)

    yield send


def _django(store: Store) -> Iterator[Send]:
    from django.conf import settings as django_settings

    if not django_settings.configured:
        from tests.django_project.harness import ensure_django

        ensure_django()
    import django

    django.setup()
    from django.test import Client, override_settings
    from django.urls import include, path

    import jobstatus.web.django

    urlconf = ModuleType("jobstatus_web_fuzz_urls")
    urlconf.urlpatterns = [  # type: ignore[attr-defined]
        path(f"{name}/", include(jobstatus.web.django.urls(store=store, **options)))
        for name, options in MOUNT_OPTIONS.items()
    ]
    client = Client()

    def send(method: str, url: str) -> Reply:
        response = client.generic(method, url)
        if response.streaming:
            text = b"".join(response.streaming_content).decode()
        else:
            text = response.content.decode()
        response.close()
        return Reply(response.status_code, response.get("content-type", ""), text)

    with override_settings(ROOT_URLCONF=urlconf, ALLOWED_HOSTS=["*"], MIDDLEWARE=[]):
        yield send


def _memory(tmp: Path) -> Store:
    return MemoryStore()


def _sqlite(tmp: Path) -> Store:
    return SQLiteStore(str(tmp / "fuzz.db"))


@pytest.fixture(
    scope="module",
    params=[
        pytest.param((_starlette, _sqlite), id="starlette-sqlite"),
        pytest.param((_flask, _memory), id="flask-memory"),
        pytest.param((_django, _memory), marks=pytest.mark.django, id="django-memory"),
    ],
)
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    framework, make_store = request.param
    store = make_store(tmp_path_factory.mktemp("fuzz"))
    for job_id, fields in SEEDED.items():
        put(store, job_id, **fields)
    servers = framework(store)
    yield Served(store, next(servers))
    for _ in servers:
        pass
    store.close()


# -- what is generated ----------------------------------------------------------------

FRAGMENTS = [
    "/", "//", ".", "..", "%", "%2F", "%2f", "%00", "%25", "%%", "\x00", "\n", "\r", "\t",
    "\x7f", "\x85", "\u2028", "\ud800", "\udfff", "?", "#", ";", "&", "=", ",", "+", " ",
    "\\", "events", "view", "children", "cancel", "static", "jobs", "alpha", "team", "42", "é",
    "😀", "\u202e", "\ufeff", "<script>", "'", '"', "*", "~",
]  # fmt: skip
path_like = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=4), max_size=10).map("".join)
job_ids = ids | path_like | st.sampled_from(sorted(SEEDED))


def raw(job_id: object) -> bytes:
    """The bytes a client would put in the URL for ``job_id`` (surrogates kept as such)."""
    if isinstance(job_id, bytes):
        return job_id
    return str(job_id).encode("utf-8", "surrogatepass")


def every_byte(data: bytes) -> str:
    """Every byte as ``%XX``, dots and letters too: no client or server can reinterpret it."""
    return "".join(f"%{byte:02X}" for byte in data)


ENCODINGS: dict[str, Callable[[bytes], str]] = {
    "every byte": every_byte,
    "quoted": lambda data: quote_from_bytes(data, safe=""),
    "slashes kept": lambda data: quote_from_bytes(data, safe="/"),
    "escapes kept": lambda data: quote_from_bytes(data, safe="/%;,=&"),
}
encodings = st.sampled_from(sorted(ENCODINGS))
ROUTES = [
    "/jobs/{}",
    "/jobs/{}/view",
    "/jobs/{}/events",
    "/jobs/{}/children",
    "/jobs/{}/cancel",
    "/jobs/{}/delete",
    "/static/{}",
]
SUFFIXES = ("/events", "/view", "/children")  # an id ending so is another route's

NAMES = ["ids", "status", "limit", "before", "cursor", "name", "prefix", "after"]
VALUES = [
    "", "0", "-1", "1", "50", "500", "501", "2147483648", "99999999999999999999999", "1e3",
    "NaN", "nan", "inf", "-Infinity", "1.5", "-0.0", "0x10", " 5", "5 ", "５", "٣", "true",
    "queued", "working", "completed", "failed", "FAILED", "null", "[]", "{}",
    "2026-01-01T00:00:00+00:00", "2026-01-01", "0001-01-01T00:00:00-14:00",
    "9999-12-31T23:59:59.999999+14:00", "2026-13-45T99:99", "now", "alpha,bad,nope",
    ",", ",,,", "alpha,alpha", "team/42", "/lead,x//y",
]  # fmt: skip
values = (
    st.sampled_from(VALUES)
    | st.integers().map(str)
    | st.floats().map(str)
    | st.text(max_size=30)
    | st.lists(job_ids.map(lambda job_id: raw(job_id).decode("utf-8", "replace")), max_size=5).map(
        ",".join
    )
)
pairs = st.lists(st.tuples(st.sampled_from(NAMES) | st.text(max_size=12), values), max_size=6)
OVERSIZED = [
    "ids=" + "a" * 40_000,  # past max_query_bytes: 414
    "ids=" + ",".join(["a"] * 1_001),  # past max_batch_ids: 400
    "&".join(["ids=a"] * 1_001),  # past Django's DATA_UPLOAD_MAX_NUMBER_FIELDS as well
    "&".join(f"p{n}=1" for n in range(2_000)),
    "limit=" + "9" * 5_000,
    "&&&",
    "=",
    "ids",
    "ids=a&ids",
    "%",
    "ids=%zz",
    "ids=%FF%FE",
    "ids=%ED%A0%80",
    "before=%00",
    "ids=alpha;status=failed",
]


def _query_part(text: str) -> str:
    return quote_from_bytes(text.encode("utf-8", "surrogatepass"), safe=",")


def encode_query(items: list[tuple[str, str]]) -> str:
    """``name=value&...``, percent-encoded (commas kept: they separate ids)."""
    return "&".join(f"{_query_part(name)}={_query_part(value)}" for name, value in items)


queries = pairs.map(encode_query) | st.sampled_from(OVERSIZED)


# -- what every answer must be --------------------------------------------------------


def expected(store: Store, job_id: str) -> dict[str, Any]:
    """What the public mount serves for a job: its stored record without private keys,
    and its id, name, percent and ETA as its Status says."""
    record = store.read(job_id)
    assert record is not None
    status = jobstatus.get(job_id, store=store)
    return {
        **{key: value for key, value in record.items() if key not in PRIVATE_KEYS},
        "job_id": job_id,
        "name": status.name,
        "percent": status.progress.percent,
        "eta": status.progress.eta,
    }


def records_in(reply: Reply) -> list[dict[str, Any]]:
    """The job records a 200 carries: one job, a batch's or listing's jobs, or events."""
    if reply.status != 200:
        return []
    if reply.content_type.startswith("text/event-stream"):
        return events(reply.text)
    if not reply.content_type.startswith("application/json"):
        return []
    body = json.loads(reply.text)
    return list(body["jobs"]) if "jobs" in body else [body]


def check(served: Served, mount: str, reply: Reply) -> None:
    """The properties every answer has, whatever was asked."""
    assert reply.status in DOCUMENTED, (reply.status, reply.text[:300])
    if reply.status in (400, 414):
        assert reply.content_type.startswith("application/json"), reply.text[:300]
        body = json.loads(reply.text)
        assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    for value in NEVER_SERVED:
        assert value not in reply.text
    records = records_in(reply)
    if mount == "private":
        assert not any(secret in reply.text for secret in OWNER)
        assert all(record.get("status") is None for record in records), records
        return
    shown = set()
    for record in records:
        secret = record.get("secret")
        if secret is None:
            continue
        owner = OWNER[secret]
        shown.add(secret)
        assert record.get("job_id") == owner
        job = {key: value for key, value in record.items() if key != "_id"}
        assert job == expected(served.store, owner)
    leaked = [secret for secret in OWNER if secret in reply.text and secret not in shown]
    assert not leaked, reply.text[:300]


# -- the properties -------------------------------------------------------------------


@FUZZ
@given(
    job_id=job_ids,
    encoding=encodings,
    route=st.sampled_from(ROUTES),
    query=st.none() | queries,
    mount=st.sampled_from(MOUNTS),
    method=st.sampled_from(["GET"] * 6 + ["POST", "PUT", "DELETE", "PATCH"]),
)
# Found on a fresh clone: Werkzeug merged "/static//0" into "/static/0" with a 308.
@example(
    job_id="/0",
    encoding="slashes kept",
    route="/static/{}",
    query=None,
    mount="public",
    method="GET",
)
@example(
    job_id="/0",
    encoding="every byte",
    route="/static/{}",
    query=None,
    mount="private",
    method="GET",
)
def test_any_id_in_any_route_gets_a_documented_answer_and_no_other_jobs_data(
    served: Served,
    job_id: object,
    encoding: str,
    route: str,
    query: str | None,
    mount: str,
    method: str,
) -> None:
    url = route.format(ENCODINGS[encoding](raw(job_id)))
    reply = served.get(mount, url if query is None else f"{url}?{query}", method)
    check(served, mount, reply)
    if method != "GET":
        assert reply.status in (404, 405)


@FUZZ
@given(job_id=job_ids, mount=st.sampled_from(MOUNTS))
def test_a_job_answers_exactly_its_own_record(served: Served, job_id: object, mount: str) -> None:
    """Every byte percent-encoded, an id reaches the app as it was; so the answer is known."""
    data = raw(job_id)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        assume(False)
    # Known and left alone: a newline or an empty id misses the routes (a 404, not a 400).
    assume(text and "\n" not in text and not text.endswith(SUFFIXES))
    reply = served.get(mount, f"/jobs/{every_byte(data)}")
    check(served, mount, reply)
    try:
        validate_job_id(text)
    except ValueError:
        assert reply.status == 400
        return
    if mount == "public" and text in SEEDED:
        assert reply.status == 200
        assert json.loads(reply.text) == expected(served.store, text)
    else:
        assert reply.status == 404 and json.loads(reply.text) == {"error": "no such job"}


@FUZZ
@given(
    query=queries,
    mount=st.sampled_from(MOUNTS),
    route=st.sampled_from(["/jobs", "/events", "/", "/counts"]),
)
def test_any_query_gets_a_documented_answer_and_no_other_jobs_data(
    served: Served, query: str, mount: str, route: str
) -> None:
    check(served, mount, served.get(mount, f"{route}?{query}"))


def as_valid_id(job_id: object) -> str:
    """``job_id`` as text without what makes an id invalid (control characters, excess)."""
    text = raw(job_id).decode("utf-8", "replace")
    return "".join(char for char in text if not _is_control(char))[:MAX_JOB_ID_LENGTH]


@FUZZ
@given(job_id=job_ids.map(as_valid_id).filter(bool))
@example(job_id="0")  # found on Starlette 0.38: the batch query reached the router in the path
def test_any_valid_id_round_trips_through_its_encoded_path(served: Served, job_id: str) -> None:
    assume(job_id not in SEEDED and not job_id.endswith(SUFFIXES))
    put(served.store, job_id, status="completed", value=job_id, token=_secret("round-trip"))
    try:
        path = f"/jobs/{every_byte(raw(job_id))}"
        reply = served.get("public", path)
        assert reply.status == 200, reply.text[:300]
        assert json.loads(reply.text) == expected(served.store, job_id)
        assert served.get("public", f"{path}/view").status == 200
        assert served.get("private", path).status == 404
        if "," not in job_id:
            batch = json.loads(served.get("public", f"/jobs?ids={every_byte(raw(job_id))}").text)
            assert batch["jobs"] == [expected(served.store, job_id)]
    finally:
        served.store.delete(job_id)


# -- what the fuzz found, kept as plain regression tests ------------------------------


def _one(framework: Callable[[Store], Iterator[Send]], store: Store) -> Iterator[Send]:
    servers = framework(store)
    yield next(servers)
    for _ in servers:
        pass


@pytest.fixture
def flask_app() -> Iterator[Send]:
    store = MemoryStore()
    put(store, "/lead", status="completed", secret="mine")
    put(store, "lead", status="completed", secret="theirs")
    yield from _one(_flask, store)


@pytest.fixture
def django_app() -> Iterator[Send]:
    yield from _one(_django, MemoryStore())


def test_flask_serves_an_id_that_starts_with_a_slash(flask_app: Send) -> None:
    reply = flask_app("GET", "/public/jobs/%2Flead")
    assert reply.status == 200 and json.loads(reply.text)["secret"] == "mine"
    assert flask_app("GET", "/public/jobs//lead/view").status == 200
    empty = json.loads(flask_app("GET", "/public/jobs/").text)
    assert empty["error"].startswith("malformed job id")


@pytest.mark.django
def test_django_answers_too_many_query_fields_in_json(django_app: Send) -> None:
    many = django_app("GET", "/public/jobs?" + "&".join(["ids=a"] * 1_001))
    assert many.status == 400 and json.loads(many.text) == {"error": "too many query parameters"}
    long = django_app("GET", "/public/jobs?" + "&".join(["ids=" + "a" * 40] * 1_001))
    assert long.status == 414 and "longer than" in json.loads(long.text)["error"]
