"""Key Vault events through on_key_vault_event, in the Event Grid schema and as CloudEvents 1.0:
a NearExpiry of our latest version queues a rotation, an Expired one also alerts; anything older
or not ours is ignored with a log line; duplicates, late and out-of-order events never rotate twice."""

from __future__ import annotations

import pytest

from blueprints.eventgrid import on_key_vault_event
from core.ports import Severity
from rotation.events import EXPIRED, NEAR_EXPIRY
from tests.support import drain_queue, key_vault_event, peek_requests, provision, record_of, run_nightly_scan

SCHEMAS = ["eventgrid", "cloudevents"]


def latest_version(emulators, tenant: str) -> str:
    with emulators.world.lock:
        return str(emulators.world.keyvault.secrets[f"nylas-entra-{tenant}"].latest.version)


def ignored_lines(caplog):
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("key vault event ignored")]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_near_expiry_of_our_latest_version_queues_a_rotation_without_alerting(svc, emulators, alerts, schema):
    provision(emulators, "acme")
    version = latest_version(emulators, "acme")
    emulators.world.reset_calls()

    on_key_vault_event(key_vault_event(NEAR_EXPIRY, "nylas-entra-acme", version, schema=schema))

    assert peek_requests(svc) == [
        {"tenant": "acme", "reason": "near-expiry-event", "version": version, "force": False, "paced": True}
    ]
    assert alerts.alerts == []
    # Fast: one Key Vault read, no Graph, no Nylas, no rotation in the event's own call.
    assert emulators.world.calls["keyvault.get_secret"] == 1
    assert emulators.world.calls["graph.add_password"] == 0


@pytest.mark.parametrize("schema", SCHEMAS)
def test_expired_secret_of_ours_alerts_critically_and_queues_a_rotation(svc, emulators, alerts, schema):
    out = provision(emulators, "late")
    emulators.world.clock.advance(days=731)
    version = latest_version(emulators, "late")

    on_key_vault_event(key_vault_event(EXPIRED, "nylas-entra-late", version, schema=schema))

    [alert] = alerts.alerts
    assert (alert.kind, alert.tenant, alert.severity) == ("secret-expired", "late", Severity.CRITICAL)
    assert out["keyId"] in alert.summary
    assert "queued" in alert.action and "runbook" in alert.action
    assert [(q["tenant"], q["reason"]) for q in peek_requests(svc)] == [("late", "expired-event")]

    drain_queue(svc)
    assert record_of(svc, "late").state == "current"
    assert emulators.world.nylas_secret_works("nylas-late")


@pytest.mark.parametrize("schema", SCHEMAS)
def test_an_event_about_an_older_version_is_ignored_with_a_log_line(svc, emulators, alerts, caplog, schema):
    provision(emulators, "moved")
    old = latest_version(emulators, "moved")
    emulators.world.clock.advance(days=710)
    on_key_vault_event(key_vault_event(NEAR_EXPIRY, "nylas-entra-moved", old))
    drain_queue(svc)
    assert latest_version(emulators, "moved") != old

    on_key_vault_event(key_vault_event(EXPIRED, "nylas-entra-moved", old, schema=schema))

    assert peek_requests(svc) == []
    assert alerts.alerts == []
    assert any("no longer the latest" in line for line in ignored_lines(caplog))


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("some-other-app-secret", "not one of ours"),
        ("nylas-entra-acme--nylas", "not a tenant record"),  # ours, but the Nylas credential
        ("nylas-entra-nobody", "not a tenant record"),  # our prefix, but no such secret
    ],
)
def test_an_event_for_a_secret_that_is_not_a_tenant_of_ours_is_ignored_with_a_log_line(
    svc, emulators, alerts, caplog, name, why
):
    provision(emulators, "acme")

    on_key_vault_event(key_vault_event(EXPIRED, name, "0" * 32))

    assert peek_requests(svc) == []
    assert alerts.alerts == []
    assert any(why in line for line in ignored_lines(caplog))


def test_other_key_vault_event_types_are_ignored(svc, emulators, caplog):
    provision(emulators, "acme")
    version = latest_version(emulators, "acme")

    on_key_vault_event(key_vault_event("Microsoft.KeyVault.SecretNewVersionCreated", "nylas-entra-acme", version))

    assert peek_requests(svc) == []
    assert any("is not acted on" in line for line in ignored_lines(caplog))


@pytest.mark.parametrize("schema", SCHEMAS)
def test_event_data_is_read_leniently_keys_in_any_case_whitespace_and_times_as_text(svc, emulators, schema):
    provision(emulators, "messy")
    version = latest_version(emulators, "messy")
    data = {
        " objectname ": " nylas-entra-messy ",
        "VERSION": f"  {version.upper()} ",
        "vaultName": "kv-test",
        "nbf": "1700000000",
        "Exp": " 2030-01-01T00:00:00Z ",
    }

    on_key_vault_event(
        key_vault_event(" microsoft.keyvault.secretnearexpiry ", "", "", schema=schema, data=data, subject="x")
    )

    assert peek_requests(svc) == [
        {"tenant": "messy", "reason": "near-expiry-event", "version": version, "force": False, "paced": True}
    ]


@pytest.mark.parametrize("schema", SCHEMAS)
@pytest.mark.parametrize("data", [{}, None, {"VaultName": "kv-test", "EXP": 1900000000}])
def test_the_secret_name_falls_back_to_the_subject(svc, emulators, schema, data):
    provision(emulators, "subj")

    on_key_vault_event(key_vault_event(NEAR_EXPIRY, "", "", schema=schema, data=data, subject=" nylas-entra-subj "))

    assert [(q["tenant"], q["reason"]) for q in peek_requests(svc)] == [("subj", "near-expiry-event")]


def test_the_name_and_version_fall_back_to_the_secret_id(svc, emulators):
    provision(emulators, "byid")
    version = latest_version(emulators, "byid")
    data = {"Id": f"https://kv-test.vault.azure.net/secrets/nylas-entra-byid/{version}"}

    on_key_vault_event(key_vault_event(NEAR_EXPIRY, "", "", data=data, subject=""))

    assert [(q["tenant"], q["version"]) for q in peek_requests(svc)] == [("byid", version)]


def test_an_event_without_data_or_subject_is_dropped_with_a_warning(svc, emulators, caplog):
    on_key_vault_event(key_vault_event(NEAR_EXPIRY, "", "", data={}, subject=""))
    on_key_vault_event(key_vault_event(NEAR_EXPIRY, "", "", data=["not", "an", "object"], subject="n"))

    assert peek_requests(svc) == []
    assert len(ignored_lines(caplog)) == 2


def test_duplicated_late_out_of_order_and_stale_near_expiry_events_rotate_exactly_once(svc, emulators, alerts):
    provision(emulators, "once")
    v1 = latest_version(emulators, "once")
    emulators.world.clock.advance(days=710)
    emulators.world.reset_calls()
    near = key_vault_event(NEAR_EXPIRY, "nylas-entra-once", v1)

    # Event Grid delivers at least once: the same event twice, and a copy as a CloudEvent,
    # all before the queue runs; the nightly scan queues the tenant as well.
    on_key_vault_event(near)
    on_key_vault_event(near)
    on_key_vault_event(key_vault_event(NEAR_EXPIRY, "nylas-entra-once", v1, schema="cloudevents"))
    run_nightly_scan()
    assert len(peek_requests(svc)) == 4
    drain_queue(svc)
    v2 = latest_version(emulators, "once")
    assert v2 != v1

    # Late and out of order: the v1 event again, and an Expired for v1 after its replacement.
    on_key_vault_event(near)
    on_key_vault_event(key_vault_event(EXPIRED, "nylas-entra-once", v1))
    # Stale: a NearExpiry for the new version long before it is due.
    on_key_vault_event(key_vault_event(NEAR_EXPIRY, "nylas-entra-once", v2))
    drain_queue(svc)

    assert emulators.world.calls["graph.add_password"] == 1
    assert emulators.world.calls["graph.remove_password"] == 1
    assert len(emulators.world.nylas.history("nylas-once")) == 2  # provisioning, then the one rotation
    assert record_of(svc, "once").state == "current"
    assert alerts.alerts == []
