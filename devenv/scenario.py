"""Scenarios on the local emulators: tenants provisioned through the real HTTP handler, the
operator of the manual target, and the design's five invariants, checked against the emulated
world (not against the service's own view). Shared by the tests, the demo and the simulation.

1. Nylas never holds a secret that Entra rejects.
2. Every credential of ours is recorded in Key Vault or removed; the latest version works.
3. Foreign credentials are never touched; a settled app holds exactly one credential of ours.
4. (after any fault) the next runs settle it: checked by the callers' settle loops.
5. No double rotation: at most one new credential recorded per rotation.
6. Every user signed in through Nylas v3 hosted auth keeps refreshing (the strongest proof: what
   Nylas does with the secret, not only what Entra says of it). An app that signs in personal
   accounts never holds more than two secrets.

Where Nylas keeps a tenant's secret is read from the emulated Nylas, by the credential's name
(the tenant's connector credential) or the connector's settings, never from our record.
"""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func

from blueprints.http_api import provision_tenant
from bootstrap import Services
from core.record import NylasTarget, RotationState, TenantRecord, secret_name
from devenv import oracle
from devenv.oracle import (
    CREDENTIAL_NAME,
    Tenant,
    credentials,
    is_our_credential,
    mark_baseline,
    nylas_credential_id,
    nylas_holds,
    nylas_holds_working_secret,
    users_who_cannot_refresh,
)
from emulators import Emulators

NYLAS_V3_KEY = "nyk_v3_local_test_key_0001"
NYLAS_V2_SECRET = "nylas-v2-local-client-secret-0001"
PROVISION_URL = "https://func.example/api/tenants"


def tenant_body(
    tenant: str = "acme",
    target: str = "v3-credential",
    *,
    auth: dict[str, Any] | None = None,
    nylas_app: str | None = None,
    region: str = "us",
    **extra: Any,
) -> dict[str, Any]:
    """A provisioning request as a client would send it (the Nylas credential inline). Tenants
    that name the same ``nylas_app`` share one Nylas application (and its API key)."""
    app_id = nylas_app or f"nylas-{tenant}"
    nylas: dict[str, Any] = {"target": target, "region": region, "appId": app_id}
    if target.startswith("v3-"):
        nylas["credential"] = NYLAS_V3_KEY + app_id
    elif target == "v2-integration":
        nylas["credential"] = NYLAS_V2_SECRET + app_id
    body: dict[str, Any] = {
        "tenant": tenant,
        "displayName": f"{tenant.title()} mail sync",
        "auth": auth or {"mode": "hosted", "region": region},
        "nylas": nylas,
    }
    body.update(extra)
    return body


def register_nylas(emulators: Emulators, body: dict[str, Any]) -> None:
    """The Nylas application a tenant points at exists before we provision it (once, however many
    tenants share it). A v3-credential tenant needs the application's Microsoft connector, which
    holds the customer's own default Entra app; a v3-connector tenant makes the connector itself.
    For the manual target (the v2 dashboard has no API) a v2 app models what the dashboard holds."""
    nylas = body["nylas"]
    world = emulators.world
    if nylas["appId"] in world.nylas.apps:
        return
    target = nylas.get("target", "v3-credential")
    if target.startswith("v3-"):
        world.nylas.add_v3_app(nylas["appId"], nylas["credential"], nylas["region"])
        if target == "v3-credential":
            default = world.graph.create_app("the-customer", {"displayName": f"{nylas['appId']} default app"})
            _, secret = world.graph.add_password_direct(default.object_id, "made in the portal")
            world.nylas.add_v3_connector(nylas["appId"], default.app_id, secret, "common")
    elif target == "v2-integration":
        world.nylas.add_v2_app(nylas["appId"], nylas["credential"], nylas["region"])
    else:
        world.nylas.add_v2_app(nylas["appId"], "dashboard-only", nylas["region"])


def http_request(method: str, url: str, body: Any = None, **route_params: str) -> func.HttpRequest:
    return func.HttpRequest(
        method=method,
        url=url,
        headers={"Content-Type": "application/json"},
        params={},
        route_params=route_params,
        body=json.dumps(body).encode() if body is not None else b"",
    )


def provision(
    svc: Services, emulators: Emulators, name: str, target: str, *, confirm: bool = True, **extra: Any
) -> Tenant:
    """Provision through the real HTTP handler; for the manual target, the operator then pastes the
    secret and confirms (unless ``confirm`` is False)."""
    body = tenant_body(name, target, **extra)
    register_nylas(emulators, body)
    response = provision_tenant(http_request("POST", PROVISION_URL, body))
    if response.status_code != 202:
        raise RuntimeError(f"provisioning {name} answered {response.status_code}: {response.get_body()[:500]!r}")
    out = json.loads(response.get_body())
    # The request made the tenant exist; its queued follow-up proves, pushes and finishes.
    from devenv.queue import drain

    drain(svc)
    tenant = Tenant(name, body, out["appObjectId"], out["clientId"], body["nylas"]["appId"], target)
    if target == "manual" and confirm:
        operator_pastes(svc, emulators, tenant)
        svc.engine.confirm(name)
    return tenant


def sign_in_user(emulators: Emulators, tenant: Tenant, email: str) -> str:
    """A mailbox user signs in through Nylas v3 hosted auth, with the tenant's credential_id
    (v3-credential) or the connector's default (v3-connector)."""
    from devenv.mailbox import sign_in

    credential_id = nylas_credential_id(emulators, tenant) if tenant.target == "v3-credential" else None
    grant: str = sign_in(
        emulators,
        nylas_app_id=tenant.nylas_app_id,
        email=email,
        credential_id=credential_id,
        region=tenant.body["nylas"]["region"],
    )
    tenant.users.append(grant)
    return grant


def operator_pastes(svc: Services, emulators: Emulators, tenant: Tenant) -> None:
    """What a person does for the manual target: read the secret from Key Vault, paste it in Nylas.
    (Read from the emulated vault directly: the person's read is not one of the service's calls.)"""
    latest = oracle.recorded(emulators, tenant)
    assert latest is not None and latest.value
    app = emulators.world.nylas.apps[tenant.nylas_app_id]
    emulators.world.nylas.record(app, tenant.client_id, latest.value)


def add_foreign_credential(emulators: Emulators, tenant: Tenant, name: str = "added by hand") -> str:
    key_id, _ = emulators.world.graph.add_password_direct(tenant.object_id, name)
    tenant.foreign.add(key_id)
    return key_id


def record(svc: Services, tenant: Tenant) -> tuple[Any, TenantRecord]:
    latest = svc.deps.vault.get(secret_name(svc.settings.secret_prefix, tenant.name))
    assert latest is not None
    rec = TenantRecord.from_tags(latest.tags)
    assert rec is not None
    return latest, rec


def check_anytime(svc: Services, emulators: Emulators, tenant: Tenant) -> list[str]:
    """Invariants that hold at every instant (devenv.oracle: the emulated world only)."""
    return oracle.check_anytime(emulators, tenant)


def check_settled(svc: Services, emulators: Emulators, tenant: Tenant) -> list[str]:
    """The resting form of every invariant (devenv.oracle: the emulated world only)."""
    return oracle.check_settled(emulators, tenant)


def settle(svc: Services, emulators: Emulators, tenant: Tenant, *, force: bool = False, max_runs: int = 6) -> list[Any]:
    """Run the rotation (and, for the manual target, the operator) until it rests. Where it stands
    is read from the emulated world, so the loop adds no call of its own to the service's."""
    outcomes = []
    for _ in range(max_runs):
        outcome = svc.engine.rotate(tenant.name, force=force)
        outcomes.append(outcome)
        rec = oracle.recorded(emulators, tenant)
        if rec is not None and rec.state == RotationState.AWAITING_CONFIRMATION.value:
            operator_pastes(svc, emulators, tenant)
            outcomes.append(svc.engine.confirm(tenant.name))
            rec = oracle.recorded(emulators, tenant)
        ours, _ = credentials(emulators, tenant)
        if rec is not None and rec.state in oracle.RESTING and len(ours) == 1:
            return outcomes
        force = False
    return outcomes


TARGETS = [t.value for t in NylasTarget]


__all__ = [
    "CREDENTIAL_NAME",
    "TARGETS",
    "Tenant",
    "credentials",
    "is_our_credential",
    "mark_baseline",
    "nylas_credential_id",
    "nylas_holds",
    "nylas_holds_working_secret",
    "users_who_cannot_refresh",
]
