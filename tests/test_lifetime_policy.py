"""Tenant lifetime policies: Graph refuses a too-long secret without saying the maximum, so the
service finds an accepted lifetime itself, records it, and keeps rotating soundly even when the
lifetime is shorter than the rotation window."""

from __future__ import annotations

import pytest

from devenv.scenario import (
    check_anytime,
    check_settled,
    credentials,
    nylas_credential_id,
    provision,
    record,
    sign_in_user,
    users_who_cannot_refresh,
)
from rotation.engine import Result


@pytest.mark.parametrize(("policy", "granted"), [(180, 180), (100, 90), (20, 14), (10, 7)])
def test_provisioning_steps_down_to_a_lifetime_the_policy_accepts_and_records_it(svc, emulators, policy, granted):
    emulators.world.graph.lifetime_policy_max_days = policy

    tenant = provision(svc, emulators, "capped", "v3-credential")

    _, rec = record(svc, tenant)
    assert rec.lifetime_days == granted
    assert rec.rotate_before_days <= granted // 2  # never due at once


def test_a_policy_under_a_week_refuses_the_provisioning_with_the_policy_named(svc, emulators):
    from blueprints.http_api import provision_tenant
    from devenv.scenario import PROVISION_URL, http_request, register_nylas, tenant_body

    emulators.world.graph.lifetime_policy_max_days = 5
    body = tenant_body("tiny", "v3-credential")
    register_nylas(emulators, body)

    response = provision_tenant(http_request("POST", PROVISION_URL, body))

    assert response.status_code == 502
    assert b"CredentialInvalidLifetimeAsPerAppPolicy" in response.get_body()


@pytest.mark.slow
def test_a_tenant_under_a_14_day_policy_rotates_through_a_year_without_reaching_expiry(svc, emulators, alerts):
    emulators.world.graph.lifetime_policy_max_days = 14
    tenant = provision(svc, emulators, "fortnight", "v3-credential")
    sign_in_user(emulators, tenant, "ada@outlook.com")
    world = emulators.world
    rotations = 0
    for day in range(365):
        world.clock.advance(days=1)
        outcome = svc.engine.rotate(tenant.name)
        rotations += outcome.result is Result.ROTATED
        assert check_anytime(svc, emulators, tenant) == [], f"day {day}"
        latest, rec = record(svc, tenant)
        assert latest.expires_on is not None and latest.expires_on > world.clock.now(), f"day {day}: expired"
        assert rec.lifetime_days == 14
    assert check_settled(svc, emulators, tenant) == []
    assert users_who_cannot_refresh(emulators, tenant) == []
    assert len(credentials(emulators, tenant)[0]) == 1 and nylas_credential_id(emulators, tenant)
    assert rotations >= 365 // 8  # every 7 days (half the lifetime), give or take the day it lands
