"""Alerts reach a webhook chosen by ALERT_WEBHOOK_URL / ALERT_WEBHOOK_KIND: generic JSON, a Teams
Workflows Adaptive Card, or Slack blocks. Each names the tenant, what happened and what to do next,
and never a secret. Retries are bounded, and a webhook that fails or is down never fails a rotation.

The receiver is a real HTTP server on 127.0.0.1; the alerts come from the real triggers."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import azure.functions as func
import pytest

from blueprints.eventgrid import on_key_vault_event
from blueprints.queue import rotate_from_queue, rotation_poison
from bootstrap import Services, use_services
from clients.alerts import WebhookNotifier
from core.ports import Alert, RotationRequest, Severity
from devenv.wiring import local_services
from rotation.events import EXPIRED
from tests.support import drain_queue, key_vault_event, provision, record_of, run_nightly_scan

# Webhook URLs carry their credential (Teams `sig=`, Slack's path): it must never reach a log.
URL_TOKEN = "sig-TOKEN-IN-URL-0123456789"


@dataclass
class Receiver:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    received: list[dict[str, Any]] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    url: str = ""

    def bodies(self) -> list[dict[str, Any]]:
        return list(self.received)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            state.received.append(json.loads(self.rfile.read(length)))
            state.content_types.append(self.headers.get("Content-Type", ""))
            answer = b"" if state.status < 400 else b'{"error":"receiver says no"}'
            self.send_response(state.status)
            for name, value in state.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/workflows/alerts?{URL_TOKEN}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks/{URL_TOKEN}"


@pytest.fixture
def webhook_service(emulators, env) -> Iterator[Any]:
    """Build the service from settings with an alert webhook (the factory picks the notifier)."""
    made: list[Services] = []

    def build(url: str, kind: str = "generic") -> Services:
        services = local_services(emulators, {**env, "ALERT_WEBHOOK_URL": url, "ALERT_WEBHOOK_KIND": kind})
        use_services(services)
        made.append(services)
        return services

    yield build
    use_services(None)
    for services in made:
        services.graph.close()


def expire(emulators, tenant: str) -> None:
    """The tenant's secret expires and Key Vault says so through Event Grid."""
    emulators.world.clock.advance(days=731)
    with emulators.world.lock:
        version = emulators.world.keyvault.secrets[f"nylas-entra-{tenant}"].latest.version
    on_key_vault_event(key_vault_event(EXPIRED, f"nylas-entra-{tenant}", version))


def assert_no_secret(emulators, payloads: list[dict[str, Any]]) -> None:
    text = json.dumps(payloads)
    leaked = [s[:3] + "…" for s in emulators.world.secret_values() if s in text]
    assert not leaked, f"secret values (hints shown) in webhook payloads: {leaked}"


def log_text(caplog) -> str:
    return "\n".join(r.getMessage() + " " + str(r.__dict__) for r in caplog.records)


# --- payloads of each kind ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["generic", "teams", "slack"])
def test_factory_chooses_the_webhook_kind_from_settings(webhook_service, receiver, kind):
    svc = webhook_service(receiver.url, kind)
    assert isinstance(svc.deps.notifier.inner, WebhookNotifier)
    assert svc.deps.notifier.inner.kind == kind


def test_generic_payload_is_flat_json_naming_tenant_what_happened_and_what_next(
    webhook_service, receiver, emulators, caplog
):
    webhook_service(receiver.url, "generic")
    provision(emulators, "acme")

    expire(emulators, "acme")

    [body] = receiver.bodies()
    assert receiver.content_types == ["application/json"]
    assert body["source"] == "nylas-entra-rotator"
    assert (body["kind"], body["severity"], body["tenant"]) == ("secret-expired", "critical", "acme")
    assert "expired" in body["summary"]
    assert "queued" in body["action"]
    assert body["details"]["key_vault_secret"] == "nylas-entra-acme"
    assert_no_secret(emulators, receiver.bodies())
    assert URL_TOKEN not in log_text(caplog)


def test_teams_payload_is_a_workflows_message_carrying_an_adaptive_card(webhook_service, receiver, emulators):
    receiver.status = 202  # what a Teams Workflows webhook answers
    webhook_service(receiver.url, "teams")
    provision(emulators, "acme")

    expire(emulators, "acme")

    [body] = receiver.bodies()
    assert body["type"] == "message"
    [attachment] = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["contentUrl"] is None
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert tuple(int(x) for x in card["version"].split(".")) <= (1, 5)  # what Teams renders
    title, summary, action, facts = card["body"]
    assert title["type"] == "TextBlock" and title["text"] == "[CRITICAL] secret-expired: acme"
    assert title["color"] == "Attention"
    assert "expired" in summary["text"]
    assert action["text"].startswith("**Next:** ") and "queued" in action["text"]
    assert facts["type"] == "FactSet"
    assert {"title": "Tenant", "value": "acme"} in facts["facts"]
    assert all(isinstance(f["value"], str) and f["value"] for f in facts["facts"])
    assert_no_secret(emulators, receiver.bodies())


def test_slack_payload_has_fallback_text_and_blocks_within_slack_limits(webhook_service, receiver, emulators):
    webhook_service(receiver.url, "slack")
    provision(emulators, "acme")

    expire(emulators, "acme")

    [body] = receiver.bodies()
    assert body["text"].startswith("[CRITICAL] secret-expired: acme: ")
    header, summary, action, context = body["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": "[CRITICAL] secret-expired: acme"}}
    assert summary["type"] == "section" and summary["text"]["type"] == "mrkdwn" and "expired" in summary["text"]["text"]
    assert action["text"]["text"].startswith("*Next:* ")
    assert context["type"] == "context" and "*key_vault_secret*: nylas-entra-acme" in context["elements"][0]["text"]
    assert_no_secret(emulators, receiver.bodies())


def test_slack_payload_escapes_control_characters_and_caps_the_header():
    from clients.alerts import slack_payload

    alert = Alert("rotation-failed", "t" * 200, Severity.CRITICAL, "a <b> & c", "run `x` > now", {"k": "<v>"})
    body = slack_payload(alert)
    assert len(body["blocks"][0]["text"]["text"]) == 150
    assert body["blocks"][1]["text"]["text"] == "a &lt;b&gt; &amp; c"
    assert body["blocks"][2]["text"]["text"] == "*Next:* run `x` &gt; now"
    assert body["blocks"][3]["elements"][0]["text"] == "• *k*: &lt;v&gt;"


# --- every alert names tenant, what happened and what next; none carries a secret -------------


def scenario_nylas_refused(emulators, svc) -> None:
    provision(emulators, "t1")
    emulators.world.faults.inject("nylas.v3_patch_connector", status=400, times=1)
    rotate_from_queue(func.QueueMessage(id="m1", body=RotationRequest("t1", "on-demand", "", True).to_json()))


def scenario_secret_limit(emulators, svc) -> None:
    out = provision(emulators, "t6", "v3-credential")
    emulators.world.graph.add_password_direct(out["appObjectId"], "made in the portal")
    rotate_from_queue(func.QueueMessage(id="m6", body=RotationRequest("t6", "on-demand", "", True).to_json()))


def scenario_manual(emulators, svc) -> None:
    provision(emulators, "t2", "manual")
    run_nightly_scan()  # awaiting confirmation: queued every night, each run reminds
    drain_queue(svc)


def scenario_expired(emulators, svc) -> None:
    provision(emulators, "t3")
    expire(emulators, "t3")


def scenario_poison(emulators, svc) -> None:
    rotation_poison(func.QueueMessage(id="m4", body=RotationRequest("t4", "due").to_json()))


def scenario_verification(emulators, svc) -> None:
    provision(emulators, "t5")
    emulators.world.entra.propagation_delay = 10_000.0  # far past VERIFY_BUDGET_SECONDS (120 in tests)
    rotate_from_queue(func.QueueMessage(id="m5", body=RotationRequest("t5", "on-demand", "", True).to_json()))


SCENARIOS = {
    "nylas-refused": (scenario_nylas_refused, "t1", ["nylas-refused"]),
    "secret-limit": (scenario_secret_limit, "t6", ["secret-limit"]),
    "manual": (scenario_manual, "t2", ["manual-action", "manual-reminder"]),
    "secret-expired": (scenario_expired, "t3", ["secret-expired"]),
    "poison-message": (scenario_poison, "t4", ["poison-message"]),
    "verification-failed": (scenario_verification, "t5", ["verification-failed", "rotation-failed"]),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_alert_names_the_tenant_what_happened_and_what_to_do_next_without_a_secret(
    webhook_service, receiver, emulators, caplog, name
):
    scenario, tenant, kinds = SCENARIOS[name]
    svc = webhook_service(receiver.url, "generic")

    scenario(emulators, svc)

    bodies = receiver.bodies()
    assert [b["kind"] for b in bodies] == kinds
    for body in bodies:
        assert body["tenant"] == tenant
        assert len(body["summary"]) > 20 and len(body["action"]) > 20
        assert body["severity"] in {"warning", "critical"}
        assert all(isinstance(v, str) for v in body["details"].values())
    assert_no_secret(emulators, bodies)
    assert URL_TOKEN not in log_text(caplog)


# --- a failing webhook never fails a rotation -------------------------------------------------


def test_a_webhook_answering_500_is_retried_a_bounded_number_of_times_and_the_rotation_succeeds(
    webhook_service, receiver, emulators, caplog
):
    receiver.status = 500
    svc = webhook_service(receiver.url, "teams")
    provision(emulators, "sturdy")

    expire(emulators, "sturdy")
    drain_queue(svc)

    assert len(receiver.bodies()) == 3  # one try and two retries, then it gives up
    assert "alert webhook answered 500" in log_text(caplog)
    assert record_of(svc, "sturdy").state == "current"
    assert emulators.world.nylas_secret_works("nylas-sturdy")


def test_a_webhook_that_is_down_never_fails_a_rotation_and_its_url_is_not_logged(webhook_service, emulators, caplog):
    svc = webhook_service(closed_port_url(), "slack")
    provision(emulators, "offline", "manual")  # the manual-action alert cannot be delivered

    assert record_of(svc, "offline").state == "awaiting-confirmation"
    expire(emulators, "offline")
    drain_queue(svc)

    assert "alert webhook unreachable: ConnectionError" in log_text(caplog)
    assert URL_TOKEN not in log_text(caplog)
    assert any(r.name == "alerts" and "secret-expired" in r.getMessage() for r in caplog.records)  # still logged


def test_a_webhook_asking_to_wait_long_is_waited_for_at_most_max_wait(receiver):
    receiver.status = 429
    receiver.headers = {"Retry-After": "3600"}
    waits: list[float] = []
    notifier = WebhookNotifier(receiver.url, "generic", max_retries=2, max_wait=5.0, sleep=waits.append)

    notifier.notify(Alert("poison-message", "acme", Severity.CRITICAL, "what happened here", "what to do next"))

    assert len(receiver.bodies()) == 3
    assert waits == [5.0, 5.0]


def test_notify_never_raises_even_for_a_malformed_url(caplog):
    notifier = WebhookNotifier("not a url", "generic", sleep=lambda _: None)

    notifier.notify(Alert("poison-message", "acme", Severity.CRITICAL, "what happened here", "what to do next"))

    assert "alert webhook unreachable" in log_text(caplog)
