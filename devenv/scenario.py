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
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func

from blueprints.http_api import provision_tenant
from clients.factory import Services
from core.record import NylasTarget, RotationState, TenantRecord, secret_name
from emulators import Emulators

NYLAS_V3_KEY = "nyk_v3_local_test_key_0001"
NYLAS_V2_SECRET = "nylas-v2-local-client-secret-0001"
PROVISION_URL = "https://func.example/api/tenants"
# The name the service gives a tenant's connector credential: spelled here, not imported.
CREDENTIAL_NAME = "nylas-entra-{tenant}"
OUR_CREDENTIAL = "nylas-entra-rotator "  # + a 12-hex rotation id: the exact format of ours


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


@dataclass
class Tenant:
    name: str
    body: dict[str, Any]
    object_id: str
    client_id: str
    nylas_app_id: str
    target: str
    foreign: set[str] = field(default_factory=set)  # key ids of credentials made by someone else
    baseline: set[str] = field(default_factory=set)  # key ids recorded before the scenario under test
    users: list[str] = field(default_factory=list)  # Nylas grant ids of users signed in through hosted auth

    @property
    def v3(self) -> bool:
        return self.target.startswith("v3-")


def provision(
    svc: Services, emulators: Emulators, name: str, target: str, *, confirm: bool = True, **extra: Any
) -> Tenant:
    """Provision through the real HTTP handler; for the manual target, the operator then pastes the
    secret and confirms (unless ``confirm`` is False)."""
    body = tenant_body(name, target, **extra)
    register_nylas(emulators, body)
    response = provision_tenant(http_request("POST", PROVISION_URL, body))
    if response.status_code != 201:
        raise RuntimeError(f"provisioning {name} answered {response.status_code}: {response.get_body()[:500]!r}")
    out = json.loads(response.get_body())
    tenant = Tenant(name, body, out["appObjectId"], out["clientId"], body["nylas"]["appId"], target)
    if target == "manual" and confirm:
        operator_pastes(svc, emulators, tenant)
        svc.engine.confirm(name)
    return tenant


def nylas_credential_id(emulators: Emulators, tenant: Tenant) -> str | None:
    """The tenant's connector credential at Nylas, found by its name."""
    wanted = CREDENTIAL_NAME.format(tenant=tenant.name)
    found = [c for c in emulators.world.nylas.credentials(tenant.nylas_app_id) if c["name"] == wanted]
    return str(found[0]["id"]) if found else None


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


def users_who_cannot_refresh(emulators: Emulators, tenant: Tenant) -> list[str]:
    broken = []
    for grant in tenant.users:
        ok, why = emulators.world.nylas.refresh_grant(tenant.nylas_app_id, grant)
        if not ok:
            broken.append(f"{grant} ({why})")
    return broken


def operator_pastes(svc: Services, emulators: Emulators, tenant: Tenant) -> None:
    """What a person does for the manual target: read the secret from Key Vault, paste it in Nylas."""
    latest = svc.deps.vault.get(secret_name(svc.settings.secret_prefix, tenant.name))
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


def is_our_credential(display_name: str | None) -> bool:
    """Our exact format, "nylas-entra-rotator <12 hex>": a look-alike made by a person is not ours."""
    name = display_name or ""
    rotation_id = name[len(OUR_CREDENTIAL) :]
    hex_id = len(rotation_id) == 12 and all(c in "0123456789abcdef" for c in rotation_id)
    return name.startswith(OUR_CREDENTIAL) and hex_id


def credentials(emulators: Emulators, tenant: Tenant) -> tuple[list[Any], list[Any]]:
    app = emulators.world.graph.apps[tenant.object_id]
    ours = [p for p in app.password_credentials if is_our_credential(p.display_name)]
    theirs = [p for p in app.password_credentials if not is_our_credential(p.display_name)]
    return ours, theirs


def nylas_holds(emulators: Emulators, tenant: Tenant) -> tuple[str, str] | None:
    """(client id, secret) where Nylas keeps this tenant's Microsoft app: its own connector
    credential (v3-credential), or the application's connector or integration."""
    if tenant.target == "v3-credential":
        credential_id = nylas_credential_id(emulators, tenant)
        return emulators.world.nylas.credential(tenant.nylas_app_id, credential_id) if credential_id else None
    return emulators.world.nylas.current(tenant.nylas_app_id)


def nylas_holds_working_secret(emulators: Emulators, tenant: Tenant) -> bool:
    held = nylas_holds(emulators, tenant)
    if held is None or held[0] != tenant.client_id:
        return False
    ok, _ = emulators.world.entra.token_works(emulators.world.entra.tenant_id, held[0], held[1])
    return ok


def check_anytime(svc: Services, emulators: Emulators, tenant: Tenant) -> list[str]:
    """Invariants that hold at every instant, mid-rotation included."""
    broken = []
    if not nylas_holds_working_secret(emulators, tenant):
        broken.append("1: Nylas holds a secret Entra rejects")
    _, rec = record(svc, tenant)
    ours, theirs = credentials(emulators, tenant)
    recorded = {rec.key_id, rec.previous_key_id} - {""}
    unrecorded = [p.key_id for p in ours if p.key_id not in recorded]
    # A crash between addPassword and the store leaves one unrecorded credential until the next run.
    if len(unrecorded) > 1:
        broken.append(f"2: {len(unrecorded)} credentials of ours are not recorded")
    if rec.key_id not in {p.key_id for p in ours}:
        broken.append("2: the latest Key Vault version records a credential that no longer exists")
    if not tenant.foreign <= {p.key_id for p in theirs}:
        broken.append("3: a foreign credential was removed")
    app = emulators.world.graph.apps[tenant.object_id]
    if app.data.get("signInAudience") == "AzureADandPersonalMicrosoftAccount" and len(app.password_credentials) > 2:
        broken.append(f"6: a personal-account app holds {len(app.password_credentials)} secrets")
    cannot = users_who_cannot_refresh(emulators, tenant)
    if cannot:
        broken.append(f"6: signed-in users cannot refresh: {', '.join(cannot)}")
    new = recorded_keys(svc, tenant) - tenant.baseline
    if tenant.baseline and len(new) > 1:
        broken.append(f"5: {len(new)} new credentials recorded in one scenario (a double rotation)")
    return broken


def recorded_keys(svc: Services, tenant: Tenant) -> set[str]:
    name = secret_name(svc.settings.secret_prefix, tenant.name)
    return {v.tags.get("key-id", "") for v in svc.deps.vault.list_versions(name)}


def mark_baseline(svc: Services, tenant: Tenant) -> None:
    """From now on, at most one new credential may be recorded (invariant 5)."""
    tenant.baseline = recorded_keys(svc, tenant)


def check_settled(svc: Services, emulators: Emulators, tenant: Tenant) -> list[str]:
    """After the runs settle: the stronger, resting form of every invariant."""
    broken = check_anytime(svc, emulators, tenant)
    latest, rec = record(svc, tenant)
    ours, _ = credentials(emulators, tenant)
    if not rec.state.settled:
        broken.append(f"4: state {rec.state} did not settle")
    if [p.key_id for p in ours] != [rec.key_id]:
        broken.append(f"3: {len(ours)} credentials of ours after settling, expected exactly the recorded one")
    held = nylas_holds(emulators, tenant)
    if held is None or held[1] != latest.value:
        broken.append("2: the latest Key Vault version is not the secret Nylas holds")
    ok, code = emulators.world.entra.token_works(emulators.world.entra.tenant_id, tenant.client_id, latest.value)
    if not ok:
        broken.append(f"2: Entra rejects the latest Key Vault version ({code})")
    return broken


def settle(svc: Services, emulators: Emulators, tenant: Tenant, *, force: bool = False, max_runs: int = 6) -> list[Any]:
    """Run the rotation (and, for the manual target, the operator) until it rests."""
    outcomes = []
    for _ in range(max_runs):
        outcome = svc.engine.rotate(tenant.name, force=force)
        outcomes.append(outcome)
        _, rec = record(svc, tenant)
        if rec.state is RotationState.AWAITING_CONFIRMATION:
            operator_pastes(svc, emulators, tenant)
            outcomes.append(svc.engine.confirm(tenant.name))
            _, rec = record(svc, tenant)
        ours, _ = credentials(emulators, tenant)
        if rec.state.settled and len(ours) == 1:
            return outcomes
        force = False
    return outcomes


TARGETS = [t.value for t in NylasTarget]
