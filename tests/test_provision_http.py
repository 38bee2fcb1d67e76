"""POST /api/tenants through the real function handler, against the emulators."""

from __future__ import annotations

import pytest

from blueprints.http_api import provision_tenant
from tests.support import http_request, our_credentials, register_nylas, response_json, tenant_body

URL = "https://func.example/api/tenants"


def post(body):
    return provision_tenant(http_request("POST", URL, body))


@pytest.mark.parametrize("target", ["v3-connector", "v2-integration", "manual"])
def test_provision_creates_app_stores_secret_and_configures_nylas(svc, emulators, alerts, target):
    body = tenant_body("acme", target)
    register_nylas(emulators, body)

    response = post(body)

    assert response.status_code == 201, response.get_body()
    out = response_json(response)
    app = emulators.world.graph.apps[out["appObjectId"]]
    assert app.app_id == out["clientId"]
    assert len(our_credentials(emulators, out["appObjectId"])) == 1
    assert out["redirectUri"] == "https://api.nylas.com/oauth/callback"
    assert "adminconsent?client_id=" + out["clientId"] in out["adminConsentUrl"]
    if target == "manual":
        assert out["rotationState"] == "awaiting-confirmation"
        assert alerts.kinds() == ["manual-action"]
    else:
        assert out["rotationState"] == "current"
        assert emulators.world.nylas_secret_works(body["nylas"]["appId"])
