"""The judge of the design's invariants: reads the emulated world only, with its own code.

It imports nothing from the service (``core``, ``clients``, ``rotation``, ``provisioning``):
tag names, the secret's name and our credentials' name format are spelt here as literals, and
tags are parsed here. A bug in the service's own readers (``TenantRecord.from_tags``,
``is_ours``) therefore cannot fool it; ``tests/test_oracle.py`` checks the imports.

1. Nylas never holds a secret that Entra rejects.
2. Every credential of ours is recorded in Key Vault or removed; the latest version works.
3. Foreign credentials are never touched; a settled app holds exactly one credential of ours.
4. (after any fault) the next runs settle it: checked by the callers' settle loops.
5. No double rotation: at most one new credential recorded per scenario.
6. Every user signed in through Nylas hosted auth keeps refreshing; an app that signs in
   personal accounts never holds more than two secrets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

SECRET_NAME = "nylas-entra-{tenant}"  # the default SECRET_PREFIX, as the tests and the demo use it
CREDENTIAL_NAME = "nylas-entra-{tenant}"  # the tenant's connector credential at Nylas
OUR_CREDENTIAL = re.compile(r"nylas-entra-rotator [0-9a-f]{12}")  # exactly; a look-alike is not ours
RESTING = {"current", "restored"}
# A credential a person made and named like ours: the test world's foreign credentials look like this,
# so that a service that matched ours loosely would remove them and break invariant 3.
LOOKALIKE = "nylas-entra-rotator (manual copy)"


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


@dataclass(frozen=True)
class Recorded:
    """The latest Key Vault version of a tenant's secret, as the oracle reads it."""

    value: str = field(repr=False)
    key_id: str
    previous_key_id: str
    state: str


def is_our_credential(display_name: str | None) -> bool:
    return bool(OUR_CREDENTIAL.fullmatch(display_name or ""))


def _entry(emulators: Any, tenant: Tenant) -> Any:
    return emulators.world.keyvault.secrets.get(SECRET_NAME.format(tenant=tenant.name).lower())


def recorded(emulators: Any, tenant: Tenant) -> Recorded | None:
    with emulators.world.lock:
        entry = _entry(emulators, tenant)
        if entry is None:
            return None
        latest = entry.latest
        tags = latest.tags or {}
        return Recorded(latest.value, tags.get("key-id", ""), tags.get("previous-key-id", ""), tags.get("state", ""))


def recorded_keys(emulators: Any, tenant: Tenant) -> set[str]:
    with emulators.world.lock:
        entry = _entry(emulators, tenant)
        return {(v.tags or {}).get("key-id", "") for v in entry.versions} if entry else set()


def mark_baseline(emulators: Any, tenant: Tenant) -> None:
    """From now on, at most one new credential may be recorded (invariant 5)."""
    tenant.baseline = recorded_keys(emulators, tenant)


def credentials(emulators: Any, tenant: Tenant) -> tuple[list[Any], list[Any]]:
    app = emulators.world.graph.apps[tenant.object_id]
    ours = [p for p in app.password_credentials if is_our_credential(p.display_name)]
    theirs = [p for p in app.password_credentials if not is_our_credential(p.display_name)]
    return ours, theirs


def nylas_credential_id(emulators: Any, tenant: Tenant) -> str | None:
    """The tenant's connector credential at Nylas, found by its name."""
    wanted = CREDENTIAL_NAME.format(tenant=tenant.name)
    found = [c for c in emulators.world.nylas.credentials(tenant.nylas_app_id) if c["name"] == wanted]
    return str(found[0]["id"]) if found else None


def nylas_holds(emulators: Any, tenant: Tenant) -> tuple[str, str] | None:
    """(client id, secret) where Nylas keeps this tenant's Microsoft app: its own connector
    credential (v3-credential), or the application's connector or integration."""
    if tenant.target == "v3-credential":
        credential_id = nylas_credential_id(emulators, tenant)
        return emulators.world.nylas.credential(tenant.nylas_app_id, credential_id) if credential_id else None
    held: tuple[str, str] | None = emulators.world.nylas.current(tenant.nylas_app_id)
    return held


def nylas_holds_working_secret(emulators: Any, tenant: Tenant) -> bool:
    held = nylas_holds(emulators, tenant)
    if held is None or held[0] != tenant.client_id:
        return False
    ok, _ = emulators.world.entra.token_works(emulators.world.entra.tenant_id, held[0], held[1])
    return bool(ok)


def users_who_cannot_refresh(emulators: Any, tenant: Tenant) -> list[str]:
    broken = []
    for grant in tenant.users:
        ok, why = emulators.world.nylas.refresh_grant(tenant.nylas_app_id, grant)
        if not ok:
            broken.append(f"{grant} ({why})")
    return broken


def check_anytime(emulators: Any, tenant: Tenant) -> list[str]:
    """Invariants that hold at every instant, mid-rotation included."""
    broken = []
    if not nylas_holds_working_secret(emulators, tenant):
        broken.append("1: Nylas holds a secret Entra rejects")
    rec = recorded(emulators, tenant)
    if rec is None:
        return [*broken, "2: no Key Vault record"]
    ours, theirs = credentials(emulators, tenant)
    known = {rec.key_id, rec.previous_key_id} - {""}
    unrecorded = [p.key_id for p in ours if p.key_id not in known]
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
    new = recorded_keys(emulators, tenant) - tenant.baseline
    if tenant.baseline and len(new) > 1:
        broken.append(f"5: {len(new)} new credentials recorded in one scenario (a double rotation)")
    return broken


def check_settled(emulators: Any, tenant: Tenant) -> list[str]:
    """After the runs settle: the stronger, resting form of every invariant."""
    broken = check_anytime(emulators, tenant)
    rec = recorded(emulators, tenant)
    if rec is None:
        return broken
    ours, _ = credentials(emulators, tenant)
    if rec.state not in RESTING:
        broken.append(f"4: state {rec.state} did not settle")
    if [p.key_id for p in ours] != [rec.key_id]:
        broken.append(f"3: {len(ours)} credentials of ours after settling, expected exactly the recorded one")
    held = nylas_holds(emulators, tenant)
    if held is None or held[1] != rec.value:
        broken.append("2: the latest Key Vault version is not the secret Nylas holds")
    ok, code = emulators.world.entra.token_works(emulators.world.entra.tenant_id, tenant.client_id, rec.value)
    if not ok:
        broken.append(f"2: Entra rejects the latest Key Vault version ({code})")
    return broken
