"""The outbox: events recorded with their change, listed by scope, relayed to Redis."""

from __future__ import annotations

import json
import threading

import pytest
import redis
import sqlalchemy as sa
from redis.backoff import NoBackoff
from redis.retry import Retry

from portal import events
from portal.events import record_event
from portal.extensions import db
from portal.models import Company, Event
from portal.services.platform.leases import acquire_lease
from portal.services.uow import unit_of_work
from portal.worker.relay import RELAY_LEASE, Relay, stream_fields
from tests.helpers import bearer, count


def _record(n: int, company: str = "acme", module: str = "m") -> None:
    with unit_of_work():
        for i in range(n):
            record_event(
                events.MODULE_REGISTERED, actor=None, company=company, data={"i": i, "m": module}
            )


def test_an_event_rolled_back_with_its_change_leaves_nothing(app_ctx, people):
    with pytest.raises(RuntimeError), unit_of_work():
        db.session.add(Company(slug="initech", name="Initech"))
        record_event(events.MODULE_REGISTERED, actor=None, company="initech")
        raise RuntimeError("the change failed")
    assert count(Event) == 0
    assert db.session.execute(sa.select(Company).where(Company.slug == "initech")).first() is None


def test_record_event_refuses_an_unknown_type(app_ctx):
    with pytest.raises(ValueError):
        record_event("module.exploded", actor=None)


def test_events_api_scopes_company_admins_to_their_company(app, client, people):
    with app.app_context():
        _record(2, company="acme")
        _record(3, company="globex")
    acme = client.get("/api/v1/events", headers=bearer(app, people.acme_admin.email)).get_json()
    assert acme["total"] == 2
    assert {item["company"] for item in acme["items"]} == {"acme"}
    # Asking for another company's events by filter still shows none of them.
    other = client.get(
        "/api/v1/events?company=globex", headers=bearer(app, people.acme_admin.email)
    ).get_json()
    assert other["total"] == 0
    admin = client.get("/api/v1/events", headers=bearer(app, people.admin.email)).get_json()
    assert admin["total"] == 5


def test_events_api_lists_newest_first_with_stream_fields_and_filters(app, client, people):
    with app.app_context():
        _record(3)
    headers = bearer(app, people.admin.email)
    body = client.get("/api/v1/events?per_page=2", headers=headers).get_json()
    assert body["page"] == 1 and body["per_page"] == 2 and body["total"] == 3
    ids = [item["id"] for item in body["items"]]
    assert ids == sorted(ids, reverse=True)
    item = body["items"][0]
    assert item["type"] == "module.registered" and isinstance(item["data"], dict)
    assert item["occurred_at"].endswith("Z")
    after = client.get(f"/api/v1/events?after_id={ids[-1]}", headers=headers).get_json()
    assert after["total"] == 1  # only the newest is above the second newest
    typed = client.get("/api/v1/events?type=module.approved", headers=headers).get_json()
    assert typed["total"] == 0


@pytest.mark.parametrize(
    "query",
    [
        "page=0",
        "page=-1",
        "page=abc",
        "page=%C2%B2",  # "²": str.isdigit() says yes, int() says no
        "page=1000001",  # past MAX_PAGE: the OFFSET would overflow
        "page=" + "9" * 40,
        "per_page=0",
        "per_page=1.5",
        "per_page=%D9%A3",  # an Arabic-Indic three
        "type=nope",
    ],
)
def test_events_api_rejects_bad_paging_and_filters_with_422(app, client, people, query):
    resp = client.get(f"/api/v1/events?{query}", headers=bearer(app, people.admin.email))
    assert resp.status_code == 422
    assert resp.get_json()["errors"]


def test_per_page_over_100_is_clamped_and_says_so(app, client, people):
    body = client.get("/api/v1/events?per_page=500", headers=bearer(app, people.admin.email))
    assert body.get_json()["per_page"] == 100


def test_only_one_lease_holder_at_a_time_and_takeover_after_expiry(app_ctx):
    assert acquire_lease("relay-test", "a", 30)
    assert not acquire_lease("relay-test", "b", 30)
    assert acquire_lease("relay-test", "a", 30)  # renewal
    assert acquire_lease("relay-test", "a", -1)  # expire it now
    assert acquire_lease("relay-test", "b", 30)


# --- Delivery to a real Redis -------------------------------------------------------


def _closed_port_redis():
    """A client for a port nobody listens on, failing at once (no client-side retries)."""
    return redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )


def _stream(redis_url, key):
    return redis.Redis.from_url(redis_url, decode_responses=True).xrange(key)


@pytest.fixture
def first_mark_fails(app_ctx, postgres_url):
    """The first UPDATE of events.published_at fails in the database (a trigger counting
    with a sequence, which a rollback does not undo); later ones succeed."""
    statements = [
        "CREATE SEQUENCE test_mark_attempts",
        "CREATE FUNCTION test_fail_first_mark() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN IF nextval('test_mark_attempts') = 1 THEN "
        "RAISE EXCEPTION 'injected: the first mark fails'; END IF; RETURN NULL; END $$",
        "CREATE TRIGGER test_fail_first_mark BEFORE UPDATE OF published_at ON events "
        "FOR EACH STATEMENT EXECUTE FUNCTION test_fail_first_mark()",
    ]
    with db.engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    yield
    db.session.rollback()  # the test's last read holds a lock the DROP would wait for
    with db.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER test_fail_first_mark ON events")
        conn.exec_driver_sql("DROP FUNCTION test_fail_first_mark()")
        conn.exec_driver_sql("DROP SEQUENCE test_mark_attempts")


@pytest.mark.truncate
@pytest.mark.postgres
def test_a_batch_whose_mark_fails_is_sent_again_and_nothing_is_lost(
    redis_url, stream_key, first_mark_fails
):
    """On PostgreSQL a batch is marked in the background while the next one is sent; when
    that mark fails, drain() says so, and the next drain sends every unmarked event
    again: each event is in the stream, first seen in order, and all end up marked."""
    _record(7)
    relay = Relay(redis.Redis.from_url(redis_url), stream=stream_key, maxlen=1000, batch_size=3)
    with pytest.raises(sa.exc.DBAPIError, match="injected"):
        relay.drain()
    relay.drain()
    seen: list[int] = []
    first_order: list[int] = []
    for _id, fields in _stream(redis_url, stream_key):
        i = json.loads(fields["data"])["i"]
        if i not in seen:
            first_order.append(i)
        seen.append(i)
    assert first_order == list(range(7))  # consumers deduplicate by event_id
    assert len(seen) > 7  # the unmarked batches really were sent twice
    assert db.session.execute(sa.select(Event).where(Event.published_at.is_(None))).first() is None


@pytest.mark.truncate
def test_relay_delivers_every_event_in_order_with_the_stream_fields(app_ctx, redis_url, stream_key):
    _record(7)
    relay = Relay(redis.Redis.from_url(redis_url), stream=stream_key, maxlen=1000, batch_size=3)
    assert relay.drain() == 7
    entries = _stream(redis_url, stream_key)
    assert [json.loads(f["data"])["i"] for _id, f in entries] == list(range(7))
    fields = entries[0][1]
    assert set(fields) == {
        "event_id",
        "type",
        "occurred_at",
        "actor",
        "company",
        "module",
        "version",
        "module_id",
        "installation_id",
        "data",
    }
    assert fields["actor"] == "system" and fields["company"] == "acme"
    assert count(Event) == 7
    assert db.session.execute(sa.select(Event).where(Event.published_at.is_(None))).first() is None
    assert relay.drain() == 0  # nothing is published twice


@pytest.mark.truncate
def test_requests_succeed_while_redis_is_down_and_the_relay_catches_up_in_order(
    app, client, people, redis_url, stream_key
):
    """Relay pointed at a closed port first, then at the real Redis."""
    with app.app_context():
        _record(4)
        down = Relay(
            _closed_port_redis(),
            stream=stream_key,
            maxlen=1000,
        )
        with pytest.raises(redis.ConnectionError):
            down.publish_batch()
        db.session.remove()
    # The web side keeps working (and recording) while Redis is unreachable.
    resp = client.post("/api/v1/auth/token", json={"email": people.admin.email, "password": "x"})
    assert resp.status_code == 401
    with app.app_context():
        _record(2, module="later")
        assert count(Event) == 6
        up = Relay(redis.Redis.from_url(redis_url), stream=stream_key, maxlen=1000)
        up.holder = down.holder  # the same relay process, now that Redis answers
        assert up.drain() == 6
    datas = [json.loads(f["data"]) for _id, f in _stream(redis_url, stream_key)]
    assert [d["i"] for d in datas] == [0, 1, 2, 3, 0, 1]


@pytest.mark.truncate
def test_relay_run_loop_retries_with_backoff_and_stops_cleanly(app, redis_url, stream_key):
    with app.app_context():
        _record(3)
        relay = Relay(
            _closed_port_redis(),
            stream=stream_key,
            maxlen=1000,
        )
    stop = threading.Event()

    def run():
        with app.app_context():
            relay.run(stop, idle_seconds=0.05)

    thread = threading.Thread(target=run)
    thread.start()
    stop.wait(0.5)
    # Redis comes back: the same loop delivers everything.
    relay.redis = redis.Redis.from_url(redis_url)
    for _ in range(100):
        if len(_stream(redis_url, stream_key)) == 3:
            break
        stop.wait(0.1)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert len(_stream(redis_url, stream_key)) == 3


def test_a_standby_relay_publishes_nothing_while_the_leader_holds_the_lease(
    app_ctx, redis_url, stream_key
):
    _record(2)
    client = redis.Redis.from_url(redis_url)
    leader = Relay(client, stream=stream_key, maxlen=1000, holder="leader")
    standby = Relay(client, stream=stream_key, maxlen=1000, holder="standby")
    assert acquire_lease(RELAY_LEASE, "leader", 30)
    assert standby.publish_batch() == 0
    assert leader.publish_batch() == 2


@pytest.mark.truncate
@pytest.mark.postgres
def test_a_row_committed_late_is_published_not_skipped(app, postgres_url, redis_url, stream_key):
    """Event 1's transaction commits after event 2's: both must reach the stream."""
    with app.app_context():
        engine = db.engine
        slow = engine.connect()
        slow_tx = slow.begin()
        slow.execute(sa.insert(Event).values(event_id="e-slow", type="module.registered"))
        _record(1, module="fast")  # gets a higher id, commits first
        relay = Relay(redis.Redis.from_url(redis_url), stream=stream_key, maxlen=1000)
        assert relay.drain() == 1
        slow_tx.commit()
        slow.close()
        assert relay.drain() == 1
    ids = [f["event_id"] for _id, f in _stream(redis_url, stream_key)]
    assert ids[-1] == "e-slow" and len(ids) == 2


@pytest.mark.truncate
@pytest.mark.parametrize("microsecond", [0, 7, 123456])
def test_the_stream_entry_is_stream_fields_of_the_row_whatever_the_timestamp(
    app_ctx, redis_url, stream_key, microsecond
):
    """The relay builds entries in the database on PostgreSQL; they must be exactly what
    stream_fields() writes (occurred_at with microseconds only when there are some)."""
    with unit_of_work():
        event = record_event(
            events.INSTALLATION_UPDATED,
            actor=None,
            company="acme",
            installation_id=42,
            data={"changed": ["config"], "ünïcode": "✓"},
        )
        event.occurred_at = event.occurred_at.replace(microsecond=microsecond)
    expected = stream_fields(db.session.get(Event, event.id))
    db.session.rollback()
    relay = Relay(redis.Redis.from_url(redis_url), stream=stream_key, maxlen=1000)
    assert relay.drain() == 1
    [(_id, fields)] = _stream(redis_url, stream_key)
    assert fields == {**expected, "data": fields["data"]}
    assert json.loads(fields["data"]) == json.loads(expected["data"])
    assert fields["occurred_at"].endswith("Z")
