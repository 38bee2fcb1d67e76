"""Helpers that make tests read like the behaviour they pin."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func

from clients.factory import Services
from core.record import MARKER, TenantRecord, secret_name
from emulators import Emulators

NYLAS_V3_KEY = "nyk_v3_local_test_key_0001"
NYLAS_V2_SECRET = "nylas-v2-local-client-secret-0001"


def tenant_body(
    tenant: str = "acme",
    target: str = "v3-connector",
    *,
    auth: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    nylas: dict[str, Any] = {"target": target, "region": "us", "appId": f"nylas-{tenant}"}
    if target == "v3-connector":
        nylas["credential"] = NYLAS_V3_KEY + tenant
    elif target == "v2-integration":
        nylas["credential"] = NYLAS_V2_SECRET + tenant
    body: dict[str, Any] = {
        "tenant": tenant,
        "displayName": f"{tenant.title()} mail sync",
        "auth": auth or {"mode": "hosted", "region": "us"},
        "nylas": nylas,
    }
    body.update(extra)
    return body


def register_nylas(emulators: Emulators, body: dict[str, Any]) -> None:
    """The Nylas application a tenant points at exists before we provision it."""
    nylas = body["nylas"]
    if nylas["target"] == "v3-connector":
        emulators.world.nylas.add_v3_app(nylas["appId"], nylas["credential"], nylas["region"])
    elif nylas["target"] == "v2-integration":
        emulators.world.nylas.add_v2_app(nylas["appId"], nylas["credential"], nylas["region"])


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
    return [p for p in app.password_credentials if (p.display_name or "").startswith(MARKER)]


def calls_by_dependency(emulators: Emulators) -> dict[str, int]:
    out: dict[str, int] = {}
    for route, count in emulators.world.calls.items():
        dependency = route.split(".", 1)[0]
        if dependency == "control":
            continue
        out[dependency] = out.get(dependency, 0) + count
    return out
