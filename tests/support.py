"""Helpers that make tests read like the behaviour they pin."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func

from bootstrap import Services
from core.record import TenantRecord, secret_name
from devenv.queue import Delivery, queue_client
from devenv.queue import drain as drain_queue
from devenv.scenario import NYLAS_V2_SECRET, NYLAS_V3_KEY, register_nylas, tenant_body
from emulators import Emulators
from rotation.engine import is_ours

__all__ = [
    "NYLAS_V2_SECRET",
    "NYLAS_V3_KEY",
    "Delivery",
    "drain_queue",
    "provision_and_settle",
    "queue_client",
    "register_nylas",
    "tenant_body",
]


def http_request(
    method: str,
    url: str,
    body: Any = None,
    *,
    route_params: dict[str, str] | None = None,
    content_type: str = "application/json",
    raw: bytes | None = None,
) -> func.HttpRequest:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
    return func.HttpRequest(
        method=method,
        url=url,
        headers={"Content-Type": content_type} if content_type else {},
        params={},
        route_params=route_params or {},
        body=data,
    )


def response_json(response: func.HttpResponse) -> Any:
    return json.loads(response.get_body())


def record_of(svc: Services, tenant: str) -> TenantRecord:
    latest = svc.deps.vault.get(secret_name(svc.settings.secret_prefix, tenant))
    assert latest is not None
    record = TenantRecord.from_tags(latest.tags)
    assert record is not None
    return record


def our_credentials(emulators: Emulators, object_id: str) -> list[Any]:
    app = emulators.world.graph.apps[object_id]
    return [p for p in app.password_credentials if is_ours(p.display_name)]


def calls_by_dependency(emulators: Emulators) -> dict[str, int]:
    out: dict[str, int] = {}
    for route, count in emulators.world.calls.items():
        dependency = route.split(".", 1)[0]
        if dependency == "control":
            continue
        out[dependency] = out.get(dependency, 0) + count
    return out


# --- triggers: provisioning, the rotation queue, events --------------------------------------

PROVISION_URL = "https://func.example/api/tenants"


def provision(emulators: Emulators, tenant: str = "acme", target: str = "v3-connector", **extra: Any) -> dict[str, Any]:
    """Provision a tenant through the real HTTP handler (as tests/test_provision_http.py does)."""

    body = tenant_body(tenant, target, **extra)
    register_nylas(emulators, body)
    return provision_and_settle(body)


def provision_and_settle(body: dict[str, Any]) -> dict[str, Any]:
    """POST /api/tenants (202: the tenant exists), run the queue until the follow-up is done, and
    return the 202 answer updated with GET /api/tenants/{tenant} (the settled state)."""
    from blueprints.http_api import get_tenant_http, provision_tenant
    from bootstrap import services

    response = provision_tenant(http_request("POST", PROVISION_URL, body))
    assert response.status_code == 202, response.get_body()
    accepted: dict[str, Any] = response_json(response)
    drain_queue(services())
    tenant = accepted["tenant"]
    got = get_tenant_http(http_request("GET", f"{PROVISION_URL}/{tenant}", route_params={"tenant": tenant}))
    assert got.status_code == 200, got.get_body()
    settled: dict[str, Any] = response_json(got)
    return {**accepted, **settled}


def peek_requests(svc: Services) -> list[dict[str, Any]]:
    """The rotation requests waiting in the queue, oldest first, without taking them."""
    from azure.core.exceptions import ResourceNotFoundError

    client = queue_client(svc)
    out: list[dict[str, Any]] = []
    try:
        # Peek shows at most 32: take each page out of sight for a moment, then put it back.
        taken = []
        while True:
            page = list(client.receive_messages(messages_per_page=32, max_messages=32, visibility_timeout=30))
            if not page:
                break
            taken += page
        for message in taken:
            out.append(json.loads(message.content))
            client.update_message(message, visibility_timeout=0)
    except ResourceNotFoundError:
        return []
    return out


def key_vault_event(
    event_type: str,
    name: str,
    version: str,
    *,
    schema: str = "eventgrid",
    data: dict[str, Any] | None = None,
    subject: str | None = None,
) -> func.EventGridEvent | func.CloudEvent:
    """A Key Vault secret event as Event Grid delivers it, in either schema."""
    import uuid
    from datetime import UTC, datetime

    topic = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-test"
    payload = (
        data
        if data is not None
        else {
            "Id": f"https://kv-test.vault.azure.net/secrets/{name}/{version}",
            "VaultName": "kv-test",
            "ObjectType": "Secret",
            "ObjectName": name,
            "Version": version,
            "NBF": None,
            "EXP": 1_900_000_000,
        }
    )
    subject = name if subject is None else subject
    if schema == "eventgrid":
        return func.EventGridEvent(
            id=str(uuid.uuid4()),
            data=payload,
            topic=topic,
            subject=subject,
            event_type=event_type,
            event_time=datetime.now(UTC),
            data_version="1",
        )
    return func.CloudEvent(
        id=str(uuid.uuid4()),
        source=topic,
        type=event_type,
        specversion="1.0",
        data=payload,
        time=datetime.now(UTC),
        subject=subject,
    )


def run_nightly_scan(*, past_due: bool = False) -> None:
    """Fire the timer function as the host does, with a real TimerRequest."""
    from azure.functions.timer import TimerRequest  # the worker's concrete func.TimerRequest

    from blueprints.timer import nightly_scan

    nightly_scan(TimerRequest(past_due=past_due))
