"""Rotation windows (ROTATION_WINDOW, rotation/windows.py): unattended rotations start only inside
the window, a night's due tenants spread evenly over it; forced and event-driven runs, stuck and
awaiting ones, and secrets too close to expiry do not wait; ``plan`` prints each start.

The pure window arithmetic first, then the service against the emulators and Azurite: the real
timer, queue, Event Grid and HTTP functions and the CLI. What reached the queue is read with the
test's own code: a recorder around the queue port (the body and visibility delay as Azure Storage
is asked for them) and Azurite itself (how many messages are out of sight, and which appear when).
Hours are not waited for: the emulated world's clock moves, and delays are read, not slept."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import azure.functions as func
import pytest

from bench.scan_bench import seed
from blueprints.eventgrid import on_key_vault_event
from blueprints.http_api import rotate_tenant
from blueprints.queue import rotate_from_queue
from bootstrap import Services, use_services
from core.ports import RotationQueue, RotationRequest
from core.settings import Settings, SettingsError
from devenv import scenario
from devenv.wiring import local_services
from rotation.events import NEAR_EXPIRY
from rotation.operations import MAX_QUEUE_DELAY_SECONDS, parse_rotation_message
from rotation.scanner import ScanItem, starts
from rotation.windows import URGENT_MARGIN, Window, must_not_wait, parse
from rotator.cli import main
from tests.support import (
    drain_queue,
    http_request,
    key_vault_event,
    peek_requests,
    provision,
    queue_client,
    record_of,
    run_nightly_scan,
)

MON = datetime(2025, 3, 3, tzinfo=UTC)  # a Monday
DAY = timedelta(days=1)
H = timedelta(hours=1)
M = timedelta(minutes=1)
BASE = {"AZURE_TENANT_ID": "t", "KEY_VAULT_URL": "https://kv.vault.azure.net/"}
TWO_HOURS = "Mon-Fri 02:00-04:00"


def at(day: int, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    """A time in the week of MON: day 0 is Monday 2025-03-03."""
    return MON + timedelta(days=day, hours=hh, minutes=mm, seconds=ss)


# --- the grammar --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "days", "start", "end", "canonical"),
    [
        ("Mon-Fri 02:00-04:00", {0, 1, 2, 3, 4}, 120, 240, "Mon-Fri 02:00-04:00 UTC"),
        ("Mon,Wed,Sat 22:00-02:00", {0, 2, 5}, 1320, 120, "Mon,Wed,Sat 22:00-02:00 UTC"),
        ("* 01:00-03:00", set(range(7)), 60, 180, "daily 01:00-03:00 UTC"),
        ("daily 1:00-3:30 UTC", set(range(7)), 60, 210, "daily 01:00-03:30 UTC"),
        ("02:00-04:00", set(range(7)), 120, 240, "daily 02:00-04:00 UTC"),
        ("Fri-Mon 23:00-01:00", {4, 5, 6, 0}, 1380, 60, "Fri-Mon 23:00-01:00 UTC"),
        ("monday , Tuesday  02:00 - 04:00", {0, 1}, 120, 240, "Mon,Tue 02:00-04:00 UTC"),
        ("SAT,sun 00:00-24:00", {5, 6}, 0, 1440, "Sat,Sun 00:00-24:00 UTC"),
    ],
)
def test_the_window_grammar(text, days, start, end, canonical):
    window = parse(text)
    assert window == Window(frozenset(days), start, end)
    assert window.describe() == canonical
    assert parse(canonical) == window  # the canonical form reads back the same
    assert Settings.from_env({**BASE, "ROTATION_WINDOW": text}).rotation_window == " ".join(text.split())


@pytest.mark.parametrize("text", ["", "   "])
def test_an_empty_window_is_no_window(text):
    assert parse(text) is None
    assert Settings.from_env({**BASE, "ROTATION_WINDOW": text}).rotation_window == ""
    assert Settings.from_env(BASE).rotation_window == ""


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Mon-Fri", "must be [DAYS] HH:MM-HH:MM"),
        ("Mon-Fri 2-4", "must be [DAYS] HH:MM-HH:MM"),
        ("Fry 02:00-04:00", "'Fry' is not a day"),
        ("Mon,,Fri 02:00-04:00", "'' is not a day"),
        ("Mon-Fri,* 02:00-04:00", "'*' is not a day"),
        ("Mon 25:00-04:00", "25:00 is not a time of day"),
        ("Mon 02:60-04:00", "02:60 is not a time of day"),
        ("Mon 24:00-02:00", "24:00 is not a time of day"),
        ("Mon 02:00-02:00", "an empty window"),
    ],
)
def test_a_malformed_window_is_refused_naming_the_setting_and_what_is_wrong(text, words):
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({**BASE, "ROTATION_WINDOW": text})
    message = str(refused.value)
    assert message.startswith("ROTATION_WINDOW") and words in message and repr(text) in message


# --- where the window is -----------------------------------------------------------------

WEEKDAYS_2_TO_4 = Window(frozenset(range(5)), 120, 240)
FRIDAY_NIGHT = Window(frozenset({4}), 22 * 60, 2 * 60)  # Fri 22:00 - Sat 02:00


@pytest.mark.parametrize(
    ("now", "opens", "is_open"),
    [
        (at(0, 1, 59, 59), at(0, 2), False),  # a second before it opens
        (at(0, 2), at(0, 2), True),  # the opening minute is inside
        (at(0, 3, 59, 59), at(0, 2), True),
        (at(0, 4), at(1, 2), False),  # the closing minute is not: next day
        (at(4, 5), at(7, 2), False),  # Friday after the window: Monday
        (at(5, 3), at(7, 2), False),  # Saturday inside the hours, but not a window day
        (at(6, 23, 59, 59), at(7, 2), False),  # Sunday night: the day boundary
    ],
)
def test_the_weekday_window_opens_on_its_days_and_hours(now, opens, is_open):
    assert WEEKDAYS_2_TO_4.occurrence(now) == (opens, opens + 2 * H)
    assert WEEKDAYS_2_TO_4.is_open(now) is is_open
    assert WEEKDAYS_2_TO_4.next_start(now) == (now if is_open else opens)


@pytest.mark.parametrize(
    ("now", "opens", "is_open"),
    [
        (at(4, 21, 59), at(4, 22), False),
        (at(4, 22), at(4, 22), True),
        (at(4, 23, 59, 59), at(4, 22), True),
        (at(5, 0), at(4, 22), True),  # past midnight: still Friday's window
        (at(5, 1, 59, 59), at(4, 22), True),
        (at(5, 2), at(11, 22), False),  # closed: next Friday
        (at(3, 23), at(4, 22), False),  # Thursday 23:00 is not a window night
        (at(0, 1), at(4, 22), False),  # Monday 01:00: Sunday is not a window day either
    ],
)
def test_a_window_that_crosses_midnight_belongs_to_the_day_it_opens(now, opens, is_open):
    assert FRIDAY_NIGHT.occurrence(now) == (opens, opens + 4 * H)
    assert FRIDAY_NIGHT.is_open(now) is is_open
    assert FRIDAY_NIGHT.next_start(now) == (now if is_open else opens)


def test_the_whole_day_window_is_always_open_and_joins_the_next_at_midnight():
    always = parse("daily 00:00-24:00")
    assert always is not None
    for now in (at(0, 0), at(2, 13, 7), at(6, 23, 59, 59)):
        assert always.is_open(now) and always.next_start(now) == now
    assert always.occurrence(at(3, 0)) == (at(3, 0), at(4, 0))


def test_a_weekly_window_is_at_most_a_week_away():
    monday = parse("Mon 02:00-04:00")
    assert monday is not None
    assert monday.next_start(at(0, 4)) == at(7, 2)
    assert monday.next_start(at(0, 4)) - at(0, 4) < 7 * DAY


# --- spreading ----------------------------------------------------------------------------


def test_fifty_tenants_scanned_before_a_two_hour_window_start_every_144_seconds_across_it():
    slots = WEEKDAYS_2_TO_4.slots(50, at(0, 1))
    assert slots[0] == at(0, 2)  # the first at the opening
    assert all(at(0, 2) <= s < at(0, 4) for s in slots)
    assert slots[-1] == at(0, 4) - timedelta(seconds=144)  # the last one gap before the close
    assert [(b - a).total_seconds() for a, b in pairwise(slots)] == [144.0] * 49


def test_a_scan_inside_the_window_spreads_over_what_is_left_of_it():
    slots = WEEKDAYS_2_TO_4.slots(50, at(0, 3))  # an hour left
    assert slots[0] == at(0, 3)
    assert all(at(0, 3) <= s < at(0, 4) for s in slots)
    assert {(b - a).total_seconds() for a, b in pairwise(slots)} == {72.0}


def test_a_scan_after_the_window_spreads_over_the_next_one_across_midnight():
    slots = FRIDAY_NIGHT.slots(50, at(5, 2))  # Saturday 02:00: this week's just closed
    assert slots[0] == at(11, 22)
    assert slots[-1] == at(12, 2) - timedelta(seconds=288)
    assert sum(1 for s in slots if s >= at(12, 0)) == 25  # half after midnight
    assert {(b - a).total_seconds() for a, b in pairwise(slots)} == {288.0}


def test_one_tenant_starts_at_the_opening_or_at_once_and_none_has_no_slot():
    assert WEEKDAYS_2_TO_4.slots(1, at(4, 5)) == [at(7, 2)]
    assert WEEKDAYS_2_TO_4.slots(1, at(0, 2, 30)) == [at(0, 2, 30)]
    assert WEEKDAYS_2_TO_4.slots(0, at(0, 1)) == []


# --- who waits ----------------------------------------------------------------------------


def test_a_secret_that_would_expire_before_the_close_plus_a_day_does_not_wait():
    closes = at(0, 4)
    assert URGENT_MARGIN == DAY
    assert must_not_wait(at(0, 1), closes)  # expired, or expiring before the window
    assert must_not_wait(at(0, 3), closes)  # inside it
    assert must_not_wait(closes + DAY - timedelta(seconds=1), closes)
    assert not must_not_wait(closes + DAY, closes)
    assert not must_not_wait(None, closes)  # no expiry recorded: nothing runs out


def item(tenant: str, reason: str = "due", expires: datetime | None = None, paced: bool = False) -> ScanItem:
    return ScanItem(tenant, reason, "", expires, "current", paced)


def test_only_due_tenants_wait_soonest_expiry_first_and_urgent_stuck_awaiting_start_at_once():
    now = at(0, 1)
    items = [
        item("later", expires=now + 20 * DAY),
        item("stuck", "stuck", now + 20 * DAY),
        item("no-expiry", expires=None),
        item("urgent", expires=now + 20 * H),
        item("awaiting", "awaiting-confirmation", now + 3 * DAY),
        item("sooner", expires=now + 10 * DAY, paced=True),
    ]
    assert starts(items, now, None) == [None] * 6  # no window: everything as today
    begins = dict(zip((i.tenant for i in items), starts(items, now, WEEKDAYS_2_TO_4), strict=True))
    assert (begins["stuck"], begins["urgent"], begins["awaiting"]) == (None, None, None)
    assert (begins["sooner"], begins["later"], begins["no-expiry"]) == (at(0, 2), at(0, 2, 40), at(0, 3, 20))


# --- the message --------------------------------------------------------------------------


def test_a_held_request_carries_its_start_and_older_messages_still_read():
    held = RotationRequest("acme", "due", "v1", not_before=1_741_000_000.25)
    assert json.loads(held.to_json())["notBefore"] == 1_741_000_000.25
    assert parse_rotation_message(held.to_json()) == held
    assert parse_rotation_message('{"tenant":"acme","reason":"due"}').not_before == 0.0
    assert "notBefore" not in json.loads(RotationRequest("acme", "due").to_json())


@pytest.mark.parametrize("value", ["NaN", "Infinity", '"soon"'])
def test_a_message_whose_start_is_not_a_time_is_unreadable(value):
    from core.errors import BadRequest

    with pytest.raises(BadRequest):
        parse_rotation_message('{"tenant":"acme","reason":"due","notBefore":' + value + "}")


# --- the service: the emulators, Azurite and the real functions ----------------------------


@dataclass
class Sent:
    at: datetime  # world time of the send
    body: str  # the message as it goes to the queue
    delay: float  # the visibility delay Azure Storage is asked for (seconds)

    @property
    def message(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    @property
    def visible_at(self) -> datetime:
        return self.at + timedelta(seconds=round(self.delay))


@dataclass
class QueueRecorder:
    """The queue port as the service sees it, recording each send before passing it on to Azurite."""

    inner: RotationQueue
    clock: Any
    sent: list[Sent] = field(default_factory=list)

    def send(self, request: RotationRequest, *, delay_seconds: float = 0.0) -> None:
        self.sent.append(Sent(self.clock.now(), request.to_json(), delay_seconds))
        self.inner.send(request, delay_seconds=delay_seconds)

    def to(self, tenant: str) -> list[Sent]:
        return [s for s in self.sent if s.message["tenant"] == tenant]


@pytest.fixture
def windowed(request, emulators, env, alerts):
    """The service with ROTATION_WINDOW set (the test's parameter, else Mon-Fri 02:00-04:00), installed
    as the functions and the CLI see it, its queue port recorded."""
    setting = getattr(request, "param", TWO_HOURS)
    services = local_services(emulators, {**env, "ROTATION_WINDOW": setting}, alerts)
    services.queue = QueueRecorder(services.queue, emulators.world.clock)
    use_services(services)
    try:
        yield services
    finally:
        use_services(None)
        services.graph.close()


@pytest.fixture
def cli(capsys, emulators):
    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        assert not [s for s in emulators.world.secret_values() if s in out or s in err]
        return code, out, err

    return run


def move_to(emulators, weekday: int, hh: int, mm: int = 0, ss: int = 0, *, after: timedelta = DAY) -> datetime:
    """Move the world's clock forward to the first ``weekday`` at hh:mm:ss at least ``after`` from now."""
    now: datetime = emulators.world.clock.now()
    day = (now + after).replace(hour=hh, minute=mm, second=ss, microsecond=0)
    while day.weekday() != weekday or day < now + after:
        day += DAY
    emulators.world.clock.advance(seconds=(day - now).total_seconds())
    return day


def invisible(services: Services) -> int:
    """Messages Azurite holds out of sight (the queue's count, less what a receive can see)."""
    return queue_client(services).get_queue_properties().approximate_message_count - len(peek_requests(services))


def deliver(body: str) -> None:
    rotate_from_queue(func.QueueMessage(id=uuid.uuid4().hex, body=body))


def test_a_night_with_50_due_tenants_starts_them_spread_over_the_two_hour_window_and_plan_prints_when(
    windowed, emulators, cli
):
    monday = move_to(emulators, 0, 1, 0)  # Monday 01:00 UTC: an hour before the window opens
    opens, closes = monday + H, monday + 3 * H
    seeded = seed(emulators.world, 50, mix=("due",))
    assert seeded.count("due") == 50

    run_nightly_scan()

    sent = windowed.queue.sent
    assert sorted(s.message["tenant"] for s in sent) == [f"t{i:06d}" for i in range(50)]
    begins = sorted(s.visible_at for s in sent)
    assert abs(begins[0] - opens) <= timedelta(seconds=1)  # the first when the window opens
    assert all(opens - timedelta(seconds=1) <= b < closes for b in begins)  # every one inside it
    gaps = [(b - a).total_seconds() for a, b in pairwise(begins)]
    assert all(143 <= g <= 145 for g in gaps), gaps  # 7200 s / 50, monotonic
    for s in sent:  # the message says the same start, so an early delivery waits again
        assert abs(s.message["notBefore"] - s.visible_at.timestamp()) <= 1
    assert invisible(windowed) == 50  # Azurite shows none of them yet
    assert peek_requests(windowed) == []

    code, out, _ = cli("plan")
    assert code == 0
    assert "Rotation window: Mon-Fri 02:00-04:00 UTC (ROTATION_WINDOW)" in out
    assert f"next opens {opens:%Y-%m-%d %H:%M:%S}" in out
    queued = {s.message["tenant"]: s.visible_at for s in sent}
    printed = {}
    for line in out.splitlines():
        words = line.split()
        if words and words[0] in queued:
            assert "rotate" in words and "due" in words
            printed[words[0]] = datetime.strptime(" ".join(words[-2:]), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    assert printed.keys() == queued.keys()
    for tenant, start in printed.items():  # plan prints the start the queue holds, to the second
        assert abs(start - queued[tenant]) <= timedelta(seconds=1), tenant

    code, out, _ = cli("plan", "--json")
    doc = json.loads(out)
    assert doc["rotationWindow"] == {
        "window": "Mon-Fri 02:00-04:00 UTC",
        "opens": f"{opens:%Y-%m-%dT%H:%M:%SZ}",
        "closes": f"{closes:%Y-%m-%dT%H:%M:%SZ}",
    }
    starts_at = {t["tenant"]: t["startsAt"] for t in doc["tenants"]}
    assert starts_at == {t: f"{s:%Y-%m-%dT%H:%M:%SZ}" for t, s in printed.items()}


def test_urgent_stuck_and_awaiting_tenants_do_not_wait_for_the_window(windowed, emulators):
    move_to(emulators, 0, 1, 0)
    seed(emulators.world, 4, mix=("due", "due", "stuck", "awaiting"))
    now = int(emulators.world.clock.now().timestamp())
    with emulators.world.lock:  # t000001's secret expires in 20 hours: waiting would be unsafe
        emulators.world.keyvault.secrets["nylas-entra-t000001"].latest.exp = now + 20 * 3600

    run_nightly_scan()

    visible = {q["tenant"]: q for q in peek_requests(windowed)}
    assert set(visible) == {"t000001", "t000002", "t000003"}
    assert all("notBefore" not in q for q in visible.values())
    assert invisible(windowed) == 1
    [held] = windowed.queue.to("t000000")
    assert held.visible_at.strftime("%a %H:%M") == "Mon 02:00"


@pytest.mark.parametrize("windowed", ["Mon 02:00-04:00"], indirect=True)
def test_a_held_request_that_appears_early_goes_back_and_rotates_at_its_time(windowed, emulators):
    out = provision(emulators, "acme")
    emulators.world.clock.advance(days=710)  # into its rotate-before window
    monday = move_to(emulators, 0, 5, 0)  # Monday 05:00: the next window is a week away
    opens = monday + 7 * DAY - 3 * H
    key = record_of(windowed, "acme").key_id
    windowed.queue.sent.clear()  # provisioning's own messages

    run_nightly_scan()

    [first] = windowed.queue.sent
    assert first.message["notBefore"] == opens.timestamp()
    assert first.delay == MAX_QUEUE_DELAY_SECONDS  # a storage queue hides a message 7 days at most
    emulators.world.reset_calls()

    emulators.world.clock.advance(seconds=MAX_QUEUE_DELAY_SECONDS)  # it appears six days on
    deliver(first.body)

    assert emulators.world.calls["graph.add_password"] == 0  # not yet
    assert record_of(windowed, "acme").key_id == key
    second = windowed.queue.sent[-1]
    assert second.message["notBefore"] == first.message["notBefore"]
    assert abs(second.visible_at - opens) <= timedelta(seconds=2)

    emulators.world.clock.advance(seconds=(opens - emulators.world.clock.now()).total_seconds())
    deliver(second.body)

    assert emulators.world.calls["graph.add_password"] == 1
    assert record_of(windowed, "acme").key_id != key
    assert record_of(windowed, "acme").state == "current"
    assert out["clientId"] and emulators.world.nylas_secret_works("nylas-acme")


def test_a_paced_tenant_held_for_the_window_starts_at_the_later_of_its_window_and_graph_slots(windowed, emulators):
    tenant = scenario.provision(windowed, emulators, "p", "v3-credential")  # signs in personal accounts
    emulators.world.clock.advance(days=710)
    monday = move_to(emulators, 0, 1, 0)
    windowed.queue.sent.clear()  # provisioning's own messages

    run_nightly_scan()

    [held] = windowed.queue.sent
    assert held.message["paced"] is True and "slot" not in held.message  # its Graph slot comes later
    assert held.message["notBefore"] == (monday + H).timestamp()
    emulators.world.clock.advance(seconds=(monday + H - emulators.world.clock.now()).total_seconds())
    windowed.pace.reserve(1, 30.0)  # the window opens, and other paced work holds Graph's next 30 s
    emulators.world.reset_calls()

    deliver(held.body)

    assert emulators.world.calls["graph.add_password"] == 0
    paced = windowed.queue.sent[-1]
    assert 29 <= paced.delay <= 31  # the Graph slot is the later one
    emulators.world.clock.advance(seconds=paced.delay)
    deliver(paced.body)
    assert emulators.world.calls["graph.add_password"] == 1
    assert scenario.record(windowed, tenant)[1].state.value == "current"


def test_forced_and_event_driven_rotations_ignore_the_window(windowed, emulators, cli):
    for name in ("by-cli", "by-http", "by-event"):
        provision(emulators, name)
    emulators.world.clock.advance(days=710)  # due: a near-expiry event is not forced
    move_to(emulators, 5, 12, 0)  # Saturday noon: the weekday window is shut
    keys = {name: record_of(windowed, name).key_id for name in ("by-cli", "by-http", "by-event")}
    windowed.queue.sent.clear()  # provisioning's own messages

    code, _, _ = cli("rotate", "by-cli")  # the operator's forced run: at once, in-process
    assert code == 0 and record_of(windowed, "by-cli").key_id != keys["by-cli"]

    tenant = "by-http"
    response = rotate_tenant(
        http_request("POST", f"https://func.example/api/tenants/{tenant}/rotate", route_params={"tenant": tenant})
    )
    assert response.status_code == 202
    on_key_vault_event(key_vault_event(NEAR_EXPIRY, "nylas-entra-by-event", latest_version(emulators, "by-event")))

    queued = {q["tenant"]: q for q in peek_requests(windowed)}
    assert set(queued) == {"by-http", "by-event"}  # visible at once
    assert all("notBefore" not in q for q in queued.values())
    assert all(s.delay == 0 for s in windowed.queue.sent)
    drain_queue(windowed, wait_delayed_seconds=30)
    for name in ("by-http", "by-event"):
        assert record_of(windowed, name).key_id != keys[name], name


def latest_version(emulators, tenant: str) -> str:
    with emulators.world.lock:
        return str(emulators.world.keyvault.secrets[f"nylas-entra-{tenant}"].latest.version)


def test_azurite_keeps_each_held_message_out_of_sight_until_its_start(emulators, env, alerts):
    """The one test that waits (seconds): a one-minute window opening three seconds from now, 20
    tenants three seconds apart; Azurite's own clock decides what a receive can see."""
    now = emulators.world.clock.now()
    opens = (now + 2 * M).replace(second=0, microsecond=0)
    emulators.world.clock.advance(seconds=(opens - timedelta(seconds=3) - now).total_seconds())
    setting = f"daily {opens:%H:%M}-{opens + M:%H:%M}"
    services = local_services(emulators, {**env, "ROTATION_WINDOW": setting}, alerts)
    services.queue = recorder = QueueRecorder(services.queue, emulators.world.clock)
    use_services(services)
    try:
        seed(emulators.world, 20, mix=("due",))
        run_nightly_scan()
        assert emulators.world.clock.now() < opens, "the scan ran late; the window had opened"
        assert invisible(services) == 20
        order = [s.message["tenant"] for s in sorted(recorder.sent, key=lambda s: s.message["notBefore"])]

        time.sleep(max(0.0, (opens + timedelta(seconds=4.5) - emulators.world.clock.now()).total_seconds()))

        assert sorted(q["tenant"] for q in peek_requests(services)) == sorted(order[:2])  # :00 and :03, not :06
    finally:
        use_services(None)
        services.graph.close()


def test_without_a_window_the_scan_queues_as_before(svc, emulators):
    seed(emulators.world, 3, mix=("due",))
    run_nightly_scan()
    queued = peek_requests(svc)
    assert len(queued) == 3 and all(set(q) == {"tenant", "reason", "version", "force"} for q in queued)
