"""POST /api/tenants through the real function handler, against the emulators."""

from __future__ import annotations

import pytest

from blueprints.http_api import provision_tenant
from tests.support import (
    http_request,
    our_credentials,
    provision_and_settle,
    register_nylas,
    tenant_body,
)

URL = "https://func.example/api/tenants"


def post(body):
    return provision_tenant(http_request("POST", URL, body))


@pytest.mark.parametrize("target", ["v3-credential", "v3-connector", "v2-integration", "manual"])
def test_provision_creates_app_stores_secret_and_configures_nylas(svc, emulators, alerts, target):
    body = tenant_body("acme", target)
    register_nylas(emulators, body)

    out = provision_and_settle(body)

    app = emulators.world.graph.apps[out["appObjectId"]]
    assert app.app_id == out["clientId"]
    assert len(our_credentials(emulators, out["appObjectId"])) == 1
    v3 = target.startswith("v3-")
    assert out["redirectUri"] == (
        "https://api.us.nylas.com/v3/connect/callback" if v3 else "https://api.nylas.com/oauth/callback"
    )
    assert "adminconsent?client_id=" + out["clientId"] in out["adminConsentUrl"]
    if target == "manual":
        assert out["rotationState"] == "awaiting-confirmation"
        assert alerts.kinds() == ["manual-action"]
    elif target == "v3-credential":
        assert out["rotationState"] == "current"
        held = emulators.world.nylas.credential(body["nylas"]["appId"], out["nylas"]["credentialId"])
        assert held is not None and held[0] == out["clientId"]
    else:
        assert out["rotationState"] == "current"
        assert emulators.world.nylas_secret_works(body["nylas"]["appId"])


@pytest.mark.parametrize(
    ("auth", "audience", "redirect", "sign_in"),
    [
        (
            {"mode": "hosted", "region": "eu"},
            "multi-org",
            "https://ireland.api.nylas.com/oauth/callback",
            "AzureADMultipleOrgs",
        ),
        (
            {"mode": "native", "redirectUri": "https://mail.example.com/nylas/callback"},
            "single-org",
            "https://mail.example.com/nylas/callback",
            "AzureADMyOrg",
        ),
    ],
)
def test_provision_registers_the_v2_app_as_the_nylas_v2_page_asks(svc, emulators, auth, audience, redirect, sign_in):
    body = tenant_body("shape", "v2-integration", auth=auth, audience=audience)
    register_nylas(emulators, body)

    out = provision_and_settle(body)

    app = emulators.world.graph.apps[out["appObjectId"]].data
    assert app["displayName"] == body["displayName"]
    assert app["signInAudience"] == sign_in
    assert app["web"]["redirectUris"] == [redirect]
    assert out["redirectUri"] == redirect
    assert "nylas-entra-rotator" in app["tags"]
    granted = {(r["resourceAppId"], a["id"]) for r in app["requiredResourceAccess"] for a in r["resourceAccess"]}
    assert ("00000003-0000-0000-c000-000000000000", "cb8f45a0-5c2e-4ea1-b803-84b870a7d7ec") in granted  # Place.Read.All
    assert ("00000002-0000-0ff1-ce00-000000000000", "3b5f3d61-589b-4a3c-a359-5dd4b5ee5bd5") in granted  # EWS
    assert len(granted) == 8
    assert any("Place.Read.All" in w for w in out["warnings"])
    consent_tenant = "organizations" if audience == "multi-org" else emulators.world.entra.tenant_id
    assert f"/{consent_tenant}/adminconsent?client_id={out['clientId']}" in out["adminConsentUrl"]
    assert emulators.world.nylas_secret_works(body["nylas"]["appId"])
