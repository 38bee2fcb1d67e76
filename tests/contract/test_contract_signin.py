"""Users signing in: Entra's /authorize and user grants [T1][E1][E2], Nylas hosted auth and grants
[NP][NJ][N9], and the simulated mailbox user (devenv.mailbox)."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from devenv.mailbox import SignInRefused, refresh_all, sign_in
from emulators.world import CONSUMERS_TENANT_ID, NYLAS_V3_CALLBACKS

US_CALLBACK = NYLAS_V3_CALLBACKS["us"]
EU_CALLBACK = NYLAS_V3_CALLBACKS["eu"]
APP_CALLBACK = "https://app.example/oauth/callback"
PERSONAL = "AzureADandPersonalMicrosoftAccount"
KEY = "nyk_signin_key"
GRAPH_ID = "00000003-0000-0000-c000-000000000000"


def entra_app(emulators, audience: str = PERSONAL, redirect: str = US_CALLBACK, **data):
    """An Entra app (as the service provisions it) with one live secret."""
    world = emulators.world
    body = {
        "displayName": "nylas sign-in",
        "signInAudience": audience,
        "api": {"requestedAccessTokenVersion": 2},
        "web": {"redirectUris": [redirect]},
        **data,
    }
    app = world.graph.create_app(world.identity.client_id, body)
    _, secret = world.graph.add_password_direct(app.object_id, "rotator")
    return app, secret


def nylas_app(emulators, app, secret, *, region: str = "us", tenant: str = "common", app_id: str = "nylas-1"):
    emulators.world.nylas.add_v3_app(app_id, KEY, region)
    emulators.world.nylas.add_v3_connector(app_id, app.app_id, secret, tenant, ["Mail.Read"])
    return app_id


@pytest.fixture
def setup(emulators):
    app, secret = entra_app(emulators)
    return app, secret, nylas_app(emulators, app, secret)


def get(emulators, url: str, **params) -> requests.Response:
    return requests.get(url, params=params or None, allow_redirects=False, verify=emulators.ca_path, timeout=10)


def query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def authorize(emulators, tenant: str, **params) -> requests.Response:
    return get(emulators, f"{emulators.urls['entra']}/{tenant}/oauth2/v2.0/authorize", **params)


def outcome(resp: requests.Response) -> tuple[str, str]:
    """('code', '') | ('redirect', AADSTS or error) | ('page', AADSTS or error) | ('login', '')."""
    if resp.status_code == 302:
        q = query(resp.headers["Location"])
        if "code" in q:
            return "code", ""
        description = q.get("error_description", "")
        return "redirect", description.split(":")[0] if description.startswith("AADSTS") else q["error"]
    if resp.status_code == 200:
        return "login", ""
    assert resp.status_code == 400 and "Location" not in resp.headers
    message = json.loads(resp.text.split("$Config=", 1)[1].split(";</script>", 1)[0])["strServiceExceptionMessage"]
    return "page", message.split(":")[0]


def sign_in_params(app, redirect: str = US_CALLBACK, **extra) -> dict[str, str]:
    params = {
        "client_id": app.app_id,
        "response_type": "code",
        "redirect_uri": redirect,
        "scope": "https://graph.microsoft.com/Mail.Read offline_access openid profile",
        "state": "s-1",
        "login_hint": "alice@contoso.com",
    }
    params.update(extra)
    return params


def code_for(emulators, app, email: str = "alice@contoso.com", tenant: str = "common", **extra) -> str:
    resp = authorize(emulators, tenant, **sign_in_params(app, login_hint=email, **extra))
    assert resp.status_code == 302, resp.text[:300]
    return query(resp.headers["Location"])["code"]


def token(emulators, tenant: str = "common", **form) -> requests.Response:
    return requests.post(
        f"{emulators.urls['entra']}/{tenant}/oauth2/v2.0/token", data=form, verify=emulators.ca_path, timeout=10
    )


def entra_error(resp: requests.Response) -> tuple[int, str, list[int]]:
    body = resp.json()
    return resp.status_code, body["error"], body["error_codes"]


# ------------------------------------------------------------------ Entra /authorize [T1][E1][E2]


def test_authorize_sends_the_user_back_with_a_code_and_the_state(emulators, setup):
    app, _, _ = setup
    resp = authorize(emulators, "common", **sign_in_params(app))
    assert resp.status_code == 302
    location = resp.headers["Location"]
    assert location.startswith(US_CALLBACK + "?")
    q = query(location)
    assert q["state"] == "s-1" and q["code"] and emulators.world.calls["entra.authorize"] == 1


def test_authorize_unknown_app_is_an_error_page_aadsts700016(emulators, setup):
    app, _, _ = setup
    resp = authorize(emulators, "common", **sign_in_params(app, client_id="00000000-0000-0000-0000-0000000000aa"))
    assert outcome(resp) == ("page", "AADSTS700016")


@pytest.mark.parametrize("redirect", [US_CALLBACK + "/", US_CALLBACK.upper(), EU_CALLBACK, "https://evil.example/cb"])
def test_authorize_redirect_uri_must_match_exactly_else_aadsts50011_page(emulators, setup, redirect):
    app, _, _ = setup
    resp = authorize(emulators, "common", **sign_in_params(app, redirect_uri=redirect))
    assert outcome(resp) == ("page", "AADSTS50011") and "text/html" in resp.headers["Content-Type"]
    assert redirect in resp.text.replace("&#x27;", "'")


@pytest.mark.parametrize(
    ("audience", "authority", "email", "expected"),
    [
        ("AzureADMyOrg", "home", "ann@emulated.onmicrosoft.com", ("code", "")),
        ("AzureADMyOrg", "home", "bob@contoso.com", ("page", "AADSTS50020")),
        ("AzureADMyOrg", "home", "carol@outlook.com", ("page", "AADSTS50020")),
        ("AzureADMyOrg", "common", "ann@emulated.onmicrosoft.com", ("redirect", "AADSTS50194")),
        ("AzureADMultipleOrgs", "common", "bob@contoso.com", ("code", "")),
        ("AzureADMultipleOrgs", "organizations", "bob@contoso.com", ("code", "")),
        ("AzureADMultipleOrgs", "common", "carol@outlook.com", ("page", "AADSTS500200")),
        ("AzureADMultipleOrgs", "home", "bob@contoso.com", ("page", "AADSTS50020")),
        ("AzureADMultipleOrgs", "consumers", "carol@outlook.com", ("page", "unauthorized_client")),
        (PERSONAL, "common", "carol@hotmail.com", ("code", "")),
        (PERSONAL, "common", "bob@contoso.com", ("code", "")),
        (PERSONAL, "consumers", "carol@live.com", ("code", "")),
        (PERSONAL, "consumers", "bob@contoso.com", ("page", "AADSTS50020")),
        (PERSONAL, "organizations", "carol@outlook.com", ("page", "AADSTS500200")),
        (PERSONAL, "home", "carol@outlook.com", ("page", "AADSTS50020")),
        ("PersonalMicrosoftAccount", "common", "carol@outlook.com", ("page", "AADSTS9002331")),
        ("PersonalMicrosoftAccount", "consumers", "carol@outlook.com", ("code", "")),
    ],
)
def test_authorize_lets_in_only_the_accounts_the_audience_allows(emulators, audience, authority, email, expected):
    app, _ = entra_app(emulators, audience)
    tenant = emulators.world.entra.tenant_id if authority == "home" else authority
    assert outcome(authorize(emulators, tenant, **sign_in_params(app, login_hint=email))) == expected


def test_authorize_at_another_organisations_authority(emulators):
    world = emulators.world
    multi, _ = entra_app(emulators, "AzureADMultipleOrgs")
    single, _ = entra_app(emulators, "AzureADMyOrg")
    contoso = world.entra.user_for_hint("bob@contoso.com").home_tenant
    assert outcome(authorize(emulators, contoso, **sign_in_params(multi, login_hint="bob@contoso.com"))) == ("code", "")
    # A single-tenant app does not exist in another directory.
    refused = authorize(emulators, contoso, **sign_in_params(single, login_hint="bob@contoso.com"))
    assert outcome(refused) == ("page", "AADSTS700016")
    assert outcome(authorize(emulators, "not-a-tenant.example", **sign_in_params(multi))) == ("page", "AADSTS90002")


def test_users_are_made_from_the_login_hint_domain_or_added_by_hand(emulators, setup):
    app, _, _ = setup
    entra = emulators.world.entra
    for email in ("p@outlook.com", "w@emulated.onmicrosoft.com", "o@fabrikam.example"):
        authorize(emulators, "common", **sign_in_params(app, login_hint=email))
    users = entra.users
    assert users["p@outlook.com"].kind == "personal" and users["p@outlook.com"].home_tenant == CONSUMERS_TENANT_ID
    assert users["w@emulated.onmicrosoft.com"].home_tenant == entra.tenant_id
    assert users["o@fabrikam.example"].kind == "work"
    assert users["o@fabrikam.example"].home_tenant not in (entra.tenant_id, CONSUMERS_TENANT_ID)
    made = entra.add_user("guest@outlook.example", "personal")
    assert made.kind == "personal" and entra.user_for_hint("GUEST@outlook.example") is made
    with pytest.raises(ValueError):
        entra.add_user("x@y.example", "robot")


def test_authorize_without_a_login_hint_stops_at_the_sign_in_page(emulators, setup):
    app, _, _ = setup
    params = sign_in_params(app)
    del params["login_hint"]
    assert outcome(authorize(emulators, "common", **params)) == ("login", "")


@pytest.mark.parametrize(
    "scope",
    ["https://graph.microsoft.com/Mail.Reed", "Mail.Read https://example.com/Thing.Do", "https://graph.microsoft.com/"],
)
def test_unknown_scopes_go_back_as_invalid_scope_aadsts70011(emulators, setup, scope):
    app, _, _ = setup
    resp = authorize(emulators, "common", **sign_in_params(app, scope=scope))
    assert outcome(resp) == ("redirect", "AADSTS70011")
    q = query(resp.headers["Location"])
    assert q["error"] == "invalid_scope" and q["state"] == "s-1"


def test_undeclared_graph_delegated_scopes_are_allowed_dynamic_consent(emulators):
    app, _ = entra_app(emulators, requiredResourceAccess=[])  # declares nothing
    scope = "Mail.Send https://graph.microsoft.com/Calendars.ReadWrite offline_access"
    assert outcome(authorize(emulators, "common", **sign_in_params(app, scope=scope))) == ("code", "")


def test_default_scope_needs_the_resource_in_required_resource_access(emulators):
    bare, _ = entra_app(emulators, requiredResourceAccess=[])
    scope = "https://graph.microsoft.com/.default offline_access"
    assert outcome(authorize(emulators, "common", **sign_in_params(bare, scope=scope))) == ("redirect", "AADSTS70011")
    declared, _ = entra_app(emulators, requiredResourceAccess=[{"resourceAppId": GRAPH_ID, "resourceAccess": []}])
    assert outcome(authorize(emulators, "common", **sign_in_params(declared, scope=scope))) == ("code", "")


@pytest.mark.parametrize("scope", ["EAS.AccessAsUser.All", "EWS.AccessAsUser.All"])
def test_exchange_eas_and_ews_scopes_are_for_work_accounts_only(emulators, setup, scope):
    app, _, _ = setup
    full = f"https://outlook.office365.com/{scope} offline_access"
    personal = authorize(emulators, "common", **sign_in_params(app, scope=full, login_hint="carol@outlook.com"))
    assert outcome(personal) == ("redirect", "AADSTS70011")
    assert "resource value" in query(personal.headers["Location"])["error_description"]
    work = authorize(emulators, "common", **sign_in_params(app, scope=full, login_hint="bob@contoso.com"))
    assert outcome(work) == ("code", "")


def test_personal_accounts_cannot_use_default_scopes(emulators):
    app, _ = entra_app(emulators, requiredResourceAccess=[{"resourceAppId": GRAPH_ID, "resourceAccess": []}])
    scope = "https://graph.microsoft.com/.default offline_access"
    personal = authorize(emulators, "common", **sign_in_params(app, scope=scope, login_hint="carol@outlook.com"))
    assert outcome(personal) == ("redirect", "AADSTS70011")
    assert "does not exist" in query(personal.headers["Location"])["error_description"]
    work = authorize(emulators, "common", **sign_in_params(app, scope=scope, login_hint="bob@contoso.com"))
    assert outcome(work) == ("code", "")


def test_authorize_protocol_errors_go_back_to_the_redirect_uri(emulators, setup):
    app, _, _ = setup
    assert outcome(authorize(emulators, "common", **sign_in_params(app, scope=""))) == ("redirect", "AADSTS900144")
    token_flow = authorize(emulators, "common", **sign_in_params(app, response_type="token"))
    assert outcome(token_flow) == ("redirect", "AADSTS700051")


# ------------------------------------------------------------------ Entra user grants


def test_authorization_code_grant_returns_user_tokens(emulators, setup):
    app, secret, _ = setup
    code = code_for(emulators, app, "ann@emulated.onmicrosoft.com")
    resp = token(
        emulators,
        grant_type="authorization_code",
        code=code,
        redirect_uri=US_CALLBACK,
        client_id=app.app_id,
        client_secret=secret,
    )
    body = resp.json()
    assert resp.status_code == 200 and resp.headers["Cache-Control"].startswith("no-store")
    assert set(body) == {
        "token_type",
        "scope",
        "expires_in",
        "ext_expires_in",
        "access_token",
        "refresh_token",
        "id_token",
    }
    assert body["token_type"] == "Bearer" and "https://graph.microsoft.com/Mail.Read" in body["scope"].split()
    claims = json.loads(base64.urlsafe_b64decode(body["id_token"].split(".")[1] + "=="))
    assert claims["preferred_username"] == "ann@emulated.onmicrosoft.com" and claims["aud"] == app.app_id
    assert claims["tid"] == emulators.world.entra.tenant_id
    # A user's access token is not the app's Graph token.
    graph = requests.get(
        emulators.urls["graph"] + "/applications",
        headers={"Authorization": f"Bearer {body['access_token']}"},
        verify=emulators.ca_path,
        timeout=10,
    )
    assert graph.status_code == 401


def test_no_offline_access_no_refresh_token(emulators, setup):
    app, secret, _ = setup
    code = code_for(emulators, app, scope="https://graph.microsoft.com/Mail.Read")
    form = {"code": code, "redirect_uri": US_CALLBACK, "client_id": app.app_id, "client_secret": secret}
    body = token(emulators, grant_type="authorization_code", **form).json()
    assert "refresh_token" not in body and "id_token" not in body


def test_client_secret_basic_is_accepted(emulators, setup):
    app, secret, _ = setup
    code = code_for(emulators, app)
    basic = base64.b64encode(f"{app.app_id}:{secret}".encode()).decode()
    resp = requests.post(
        f"{emulators.urls['entra']}/common/oauth2/v2.0/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": US_CALLBACK},
        headers={"Authorization": f"Basic {basic}"},
        verify=emulators.ca_path,
        timeout=10,
    )
    assert resp.status_code == 200


def test_a_code_is_single_use_and_bound_to_its_redirect_uri_and_client(emulators, setup):
    app, secret, _ = setup
    other, other_secret = entra_app(emulators)
    code = code_for(emulators, app)
    form = {"grant_type": "authorization_code", "client_id": app.app_id, "client_secret": secret}
    wrong_uri = token(emulators, code=code, redirect_uri=EU_CALLBACK, **form)
    assert entra_error(wrong_uri) == (400, "invalid_grant", [70002, 50011])
    wrong_client = {**form, "client_id": other.app_id, "client_secret": other_secret}
    assert entra_error(token(emulators, code=code, redirect_uri=US_CALLBACK, **wrong_client)) == (
        400,
        "invalid_grant",
        [70000],
    )
    assert token(emulators, code=code, redirect_uri=US_CALLBACK, **form).status_code == 200
    again = token(emulators, code=code, redirect_uri=US_CALLBACK, **form)
    assert entra_error(again) == (400, "invalid_grant", [54005])
    unknown = token(emulators, code="not-a-code", redirect_uri=US_CALLBACK, **form)
    assert entra_error(unknown) == (400, "invalid_grant", [9002313])


def test_a_code_expires_after_ten_minutes(emulators, setup):
    app, secret, _ = setup
    code = code_for(emulators, app)
    emulators.world.clock.advance(seconds=601)
    form = {"code": code, "redirect_uri": US_CALLBACK, "client_id": app.app_id, "client_secret": secret}
    assert entra_error(token(emulators, grant_type="authorization_code", **form)) == (400, "invalid_grant", [70008])


def test_user_grants_check_the_client_secret_like_client_credentials(emulators, setup):
    app, secret, _ = setup
    world = emulators.world
    form = {"grant_type": "authorization_code", "redirect_uri": US_CALLBACK, "client_id": app.app_id}
    wrong = token(emulators, code=code_for(emulators, app), client_secret="wrong-secret", **form)
    assert entra_error(wrong) == (401, "invalid_client", [7000215])
    missing = token(emulators, code=code_for(emulators, app), **form)
    assert entra_error(missing) == (401, "invalid_client", [7000218])
    world.entra.propagation_delay = 30
    _, fresh = world.graph.add_password_direct(app.object_id, "new")
    young = token(emulators, code=code_for(emulators, app), client_secret=fresh, **form)
    assert entra_error(young) == (401, "invalid_client", [7000215])
    world.entra.propagation_delay = 0
    world.graph.apps[app.object_id].password_credentials[0].end = world.clock.now()
    expired = token(emulators, code=code_for(emulators, app), client_secret=secret, **form)
    assert entra_error(expired) == (401, "invalid_client", [7000222])
    ghost = {**form, "client_id": "00000000-0000-0000-0000-0000000000bb"}
    assert entra_error(token(emulators, code="x", client_secret="s", **ghost)) == (400, "unauthorized_client", [700016])
    assert entra_error(token(emulators, "nowhere.example", code="x", client_secret=secret, **form))[2] == [90002]


def test_refresh_token_survives_secret_rotation_and_dies_with_the_app(emulators, setup):
    app, secret, _ = setup
    world = emulators.world
    form = {"code": code_for(emulators, app), "redirect_uri": US_CALLBACK, "client_id": app.app_id}
    refresh = token(emulators, grant_type="authorization_code", client_secret=secret, **form).json()["refresh_token"]
    old_key = app.password_credentials[0].key_id
    _, new_secret = world.graph.add_password_direct(app.object_id, "rotated")
    world.graph.remove_password_direct(app.object_id, old_key)
    grant = {"grant_type": "refresh_token", "refresh_token": refresh, "client_id": app.app_id}
    assert entra_error(token(emulators, client_secret=secret, **grant)) == (401, "invalid_client", [7000215])
    renewed = token(emulators, client_secret=new_secret, **grant)
    assert renewed.status_code == 200 and renewed.json()["refresh_token"]
    other, other_secret = entra_app(emulators)
    stolen = {**grant, "client_id": other.app_id, "client_secret": other_secret}
    assert entra_error(token(emulators, **stolen)) == (400, "invalid_grant", [70000])
    del world.graph.apps[app.object_id]
    gone = token(emulators, client_secret=new_secret, **grant)
    assert entra_error(gone) == (400, "unauthorized_client", [700016])


# ------------------------------------------------------------------ Nylas hosted auth [NP][NJ][N9]


def test_connect_auth_sends_the_user_to_microsoft_with_the_active_credential(emulators, setup):
    app, _, nylas = setup
    resp = get(
        emulators,
        emulators.urls["nylas"] + "/v3/connect/auth",
        client_id=nylas,
        redirect_uri=APP_CALLBACK,
        response_type="code",
        provider="microsoft",
        scope="Mail.Read https://graph.microsoft.com/Calendars.Read",
        state="app-state",
        login_hint="bob@contoso.com",
    )
    assert resp.status_code == 302
    location = resp.headers["Location"]
    assert location.startswith(f"{emulators.urls['entra']}/common/oauth2/v2.0/authorize?")
    q = query(location)
    assert q["client_id"] == app.app_id and q["redirect_uri"] == US_CALLBACK and q["response_type"] == "code"
    assert q["scope"].split() == [
        "https://graph.microsoft.com/Mail.Read",
        "https://graph.microsoft.com/Calendars.Read",
        "offline_access",
        "openid",
        "profile",
    ]
    assert q["login_hint"] == "bob@contoso.com" and q["state"] and q["state"] != "app-state"


def test_connect_auth_uses_the_connector_scopes_the_tenant_and_the_region_callback(emulators):
    app, secret = entra_app(emulators, redirect=EU_CALLBACK)
    nylas = nylas_app(emulators, app, secret, region="eu", tenant=emulators.world.entra.tenant_id)
    resp = get(
        emulators,
        emulators.urls["nylas"] + "/v3/connect/auth",
        client_id=nylas,
        redirect_uri=APP_CALLBACK,
        response_type="code",
        provider="microsoft",
    )
    q = query(resp.headers["Location"])
    assert urlsplit(resp.headers["Location"]).path == f"/{emulators.world.entra.tenant_id}/oauth2/v2.0/authorize"
    assert q["redirect_uri"] == EU_CALLBACK and q["scope"].split()[0] == "https://graph.microsoft.com/Mail.Read"


def test_connect_auth_with_a_credential_id_uses_that_credential(emulators, setup):
    _, _, nylas = setup
    other, other_secret = entra_app(emulators)
    cred = emulators.world.nylas.new_credential(
        emulators.world.nylas.apps[nylas],
        "tenant-b",
        "connector",
        {"client_id": other.app_id, "client_secret": other_secret},
    )
    params = {"client_id": nylas, "redirect_uri": APP_CALLBACK, "response_type": "code", "provider": "microsoft"}
    resp = get(emulators, emulators.urls["nylas"] + "/v3/connect/auth", credential_id=cred.id, **params)
    assert query(resp.headers["Location"])["client_id"] == other.app_id
    unknown = get(emulators, emulators.urls["nylas"] + "/v3/connect/auth", credential_id="nope", **params)
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "api.not_found_error"


def test_connect_auth_without_a_credential_id_uses_the_active_credential_not_the_primary(emulators, setup):
    # [N9]: without credential_id, the connector's active_credential_id picks the Microsoft app.
    _, _, nylas = setup
    other, other_secret = entra_app(emulators)
    app = emulators.world.nylas.apps[nylas]
    cred = emulators.world.nylas.new_credential(
        app, "tenant-c", "connector", {"client_id": other.app_id, "client_secret": other_secret}
    )
    app.active_credential_id = cred.id
    params = {"client_id": nylas, "redirect_uri": APP_CALLBACK, "response_type": "code", "provider": "microsoft"}
    resp = get(emulators, emulators.urls["nylas"] + "/v3/connect/auth", **params)
    assert query(resp.headers["Location"])["client_id"] == other.app_id


def test_connect_auth_refusals(emulators, setup):
    _, _, nylas = setup
    emulators.world.nylas.add_v3_app("bare", "bare-key")
    url = emulators.urls["nylas"] + "/v3/connect/auth"
    base = {"redirect_uri": APP_CALLBACK, "response_type": "code", "provider": "microsoft"}
    no_connector = get(emulators, url, client_id="bare", **base)
    assert no_connector.status_code == 404 and no_connector.json()["error"]["type"] == "api.not_found_error"
    unknown_app = get(emulators, url, client_id="nobody", **base)
    assert unknown_app.status_code == 400 and unknown_app.json()["error"]["type"] == "api.invalid_request_error"
    missing = get(emulators, url, client_id=nylas, response_type="code")
    assert missing.status_code == 400
    long_state = get(emulators, url, client_id=nylas, state="x" * 257, **base)
    assert long_state.status_code == 400


def test_sign_in_makes_a_grant_and_the_code_exchange_returns_it(emulators, setup):
    app, _, nylas = setup
    world = emulators.world
    to_microsoft = get(
        emulators,
        emulators.urls["nylas"] + "/v3/connect/auth",
        client_id=nylas,
        redirect_uri=APP_CALLBACK,
        response_type="code",
        provider="microsoft",
        state="app-state",
        login_hint="bob@contoso.com",
        access_type="offline",
    ).headers["Location"]
    to_nylas = get(emulators, to_microsoft).headers["Location"]
    assert to_nylas.startswith(US_CALLBACK)
    callback = get(emulators, emulators.urls["nylas"] + to_nylas[len("https://api.us.nylas.com") :])
    assert callback.status_code == 302
    back = query(callback.headers["Location"])
    assert callback.headers["Location"].startswith(APP_CALLBACK) and back["state"] == "app-state"
    exchange = {
        "client_id": nylas,
        "client_secret": KEY,
        "grant_type": "authorization_code",
        "code": back["code"],
        "redirect_uri": APP_CALLBACK,
    }
    url = emulators.urls["nylas"] + "/v3/connect/token"
    resp = requests.post(url, json=exchange, verify=emulators.ca_path, timeout=10)
    body = resp.json()
    assert resp.status_code == 200
    assert {"access_token", "grant_id", "email", "scope", "expires_in", "token_type", "provider"} <= set(body)
    assert body["email"] == "bob@contoso.com" and body["provider"] == "microsoft" and body["refresh_token"]
    [grant] = world.nylas.grants(nylas)
    assert (grant.id, grant.email, grant.credential_id, grant.provider) == (
        body["grant_id"],
        body["email"],
        None,
        "microsoft",
    )
    assert grant.client_id == app.app_id
    # The code is single use; the token endpoint answers in its OAuth error shape.
    again = requests.post(url, data=exchange, verify=emulators.ca_path, timeout=10)
    assert again.status_code == 400 and set(again.json()) == {"error", "error_code", "error_description", "error_uri"}
    assert again.json()["error"] == "exchange_failed"
    bad_key = requests.post(url, json={**exchange, "client_secret": "wrong"}, verify=emulators.ca_path, timeout=10)
    assert bad_key.status_code == 400 and bad_key.json()["error"] == "unauthorized_access"
    no_code = requests.post(url, json={**exchange, "code": ""}, verify=emulators.ca_path, timeout=10)
    assert no_code.json()["error_description"] == "Missing required parameter: code"


def test_nylas_redeems_with_the_secret_it_holds_at_callback_time(emulators, setup):
    app, secret, nylas = setup
    world = emulators.world
    to_microsoft = get(
        emulators,
        emulators.urls["nylas"] + "/v3/connect/auth",
        client_id=nylas,
        redirect_uri=APP_CALLBACK,
        response_type="code",
        provider="microsoft",
        state="st",
        login_hint="bob@contoso.com",
    ).headers["Location"]
    to_nylas = get(emulators, to_microsoft).headers["Location"]
    # Meanwhile the connector's secret changes to one Entra does not know.
    world.nylas.record(world.nylas.apps[nylas], app.app_id, "not-the-secret-anymore")
    before = dict(world.calls)
    back = get(emulators, emulators.urls["nylas"] + to_nylas[len("https://api.us.nylas.com") :])
    q = query(back.headers["Location"])
    assert (q["error"], q["error_code"], q["state"]) == ("provider_code_request_failed", "45001", "st")
    assert world.nylas.grants(nylas) == []
    assert world.nylas.apps[nylas].provider_errors[-1][1] == "AADSTS7000215"
    # The redemption happened in-process: no Entra route was called for it.
    assert {k: v for k, v in world.calls.items() if k.startswith("entra.")} == {
        k: v for k, v in before.items() if k.startswith("entra.")
    }
    assert secret not in back.headers["Location"]


def test_signing_in_again_with_the_same_email_reauthenticates_the_grant(emulators, setup):
    _, _, nylas = setup
    first = sign_in(emulators, nylas_app_id=nylas, email="bob@contoso.com")
    again = sign_in(emulators, nylas_app_id=nylas, email="BOB@contoso.com")
    assert first == again and len(emulators.world.nylas.grants(nylas)) == 1


def test_sign_in_with_a_credential_id_records_it_on_the_grant(emulators, setup):
    _, _, nylas = setup
    other, other_secret = entra_app(emulators)
    cred = emulators.world.nylas.new_credential(
        emulators.world.nylas.apps[nylas], "b", "connector", {"client_id": other.app_id, "client_secret": other_secret}
    )
    grant_id = sign_in(emulators, nylas_app_id=nylas, email="carol@outlook.com", credential_id=cred.id)
    [grant] = emulators.world.nylas.grants(nylas)
    assert (grant.id, grant.credential_id, grant.client_id) == (grant_id, cred.id, other.app_id)


# ------------------------------------------------------------------ grants refreshed by Nylas (the oracle)


def test_refresh_grant_works_across_a_rotation_nylas_followed(emulators, setup):
    app, _, nylas = setup
    world = emulators.world
    grant_id = sign_in(emulators, nylas_app_id=nylas, email="carol@outlook.com")
    assert world.nylas.refresh_grant(nylas, grant_id) == (True, "")
    old_key = app.password_credentials[0].key_id
    _, new_secret = world.graph.add_password_direct(app.object_id, "rotated")
    world.nylas.record(world.nylas.apps[nylas], app.app_id, new_secret)
    world.graph.remove_password_direct(app.object_id, old_key)
    assert world.nylas.refresh_grant(nylas, grant_id) == (True, "")
    assert world.nylas.grants(nylas)[0].last_refresh == (True, "")


def test_refresh_grant_fails_when_nylas_holds_a_removed_secret(emulators, setup):
    app, _, nylas = setup
    world = emulators.world
    grant_id = sign_in(emulators, nylas_app_id=nylas, email="carol@outlook.com")
    world.graph.remove_password_direct(app.object_id, app.password_credentials[0].key_id)
    assert world.nylas.refresh_grant(nylas, grant_id) == (False, "AADSTS7000215")
    assert refresh_all(world) == {(nylas, grant_id): (False, "AADSTS7000215")}


def test_refresh_grant_after_the_entra_app_is_deleted_is_aadsts700016(emulators, setup):
    app, _, nylas = setup
    grant_id = sign_in(emulators, nylas_app_id=nylas, email="bob@contoso.com")
    del emulators.world.graph.apps[app.object_id]
    assert emulators.world.nylas.refresh_grant(nylas, grant_id) == (False, "AADSTS700016")


def test_refresh_grant_follows_the_credential_the_grant_names(emulators, setup):
    _, _, nylas = setup
    world = emulators.world
    other, other_secret = entra_app(emulators)
    cred = world.nylas.new_credential(
        world.nylas.apps[nylas], "b", "connector", {"client_id": other.app_id, "client_secret": other_secret}
    )
    named = sign_in(emulators, nylas_app_id=nylas, email="named@outlook.com", credential_id=cred.id)
    default = sign_in(emulators, nylas_app_id=nylas, email="default@outlook.com")
    # The active credential becomes the other Entra app: grants made without a credential_id follow it,
    # but their refresh token belongs to the first app's client id.
    world.nylas.apps[nylas].active_credential_id = cred.id
    assert refresh_all(world) == {(nylas, named): (True, ""), (nylas, default): (False, "AADSTS70000")}
    world.nylas.apps[nylas].active_credential_id = world.nylas.apps[nylas].primary_credential_id
    del world.nylas.apps[nylas].credentials[cred.id]
    assert world.nylas.refresh_grant(nylas, named) == (False, "credential-deleted")
    assert world.nylas.refresh_grant(nylas, default) == (True, "")
    assert world.nylas.refresh_grant(nylas, "no-such-grant") == (False, "grant-not-found")


def test_secret_values_hold_credential_secrets_and_refresh_tokens_and_reset_clears_them(emulators, setup):
    _, secret, nylas = setup
    world = emulators.world
    other, other_secret = entra_app(emulators)
    world.nylas.new_credential(
        world.nylas.apps[nylas], "b", "connector", {"client_id": other.app_id, "client_secret": other_secret}
    )
    sign_in(emulators, nylas_app_id=nylas, email="carol@outlook.com")
    [grant] = world.nylas.grants(nylas)
    values = world.secret_values()
    assert {secret, other_secret, grant.refresh_token, KEY} <= values
    assert set(world.entra.refresh_tokens()) <= values
    assert grant.refresh_token not in repr(grant) and other_secret not in str(world.snapshot())
    world.reset()
    assert world.nylas.grants(nylas) == [] and world.entra.users == {} and world.entra.refresh_tokens() == []


# ------------------------------------------------------------------ the mailbox user (devenv.mailbox)


def test_mailbox_sign_in_returns_the_grant_id(emulators, setup):
    _, _, nylas = setup
    grant_id = sign_in(emulators, nylas_app_id=nylas, email="carol@outlook.com", scopes=["Mail.Read", "Mail.Send"])
    [grant] = emulators.world.nylas.grants(nylas)
    assert grant.id == grant_id and "https://graph.microsoft.com/Mail.Send" in grant.scopes


def test_mailbox_eu_sign_in_maps_the_eu_callback(emulators):
    app, secret = entra_app(emulators, redirect=EU_CALLBACK)
    nylas = nylas_app(emulators, app, secret, region="eu")
    assert sign_in(emulators, nylas_app_id=nylas, email="bob@contoso.com", region="eu")


@pytest.mark.parametrize(
    ("change", "code", "hop"),
    [
        ("redirect", "AADSTS50011", "entra.authorize"),
        ("audience", "AADSTS500200", "entra.authorize"),
        ("secret", "AADSTS7000215", "nylas.connect_callback"),
        ("scope", "AADSTS70011", "nylas.connect_callback"),
        ("credential", "api.not_found_error", "nylas.connect_auth"),
    ],
)
def test_mailbox_sign_in_refusal_names_the_code_and_hop_without_secrets(emulators, setup, change, code, hop):
    app, secret, nylas = setup
    world = emulators.world
    kwargs: dict[str, Any] = {}
    if change == "redirect":
        app.data["web"]["redirectUris"] = [US_CALLBACK + "/"]
    elif change == "audience":
        app.data["signInAudience"] = "AzureADMultipleOrgs"
    elif change == "secret":
        world.graph.remove_password_direct(app.object_id, app.password_credentials[0].key_id)
    elif change == "scope":
        kwargs["scopes"] = ["https://outlook.office365.com/EWS.AccessAsUser.All"]
    else:
        kwargs["credential_id"] = "no-such-credential"
    with pytest.raises(SignInRefused) as refused:
        sign_in(emulators, nylas_app_id=nylas, email="carol@outlook.com", **kwargs)
    assert (refused.value.code, refused.value.hop) == (code, hop)
    text = str(refused.value)
    assert code in text and not any(s in text for s in world.secret_values())
    assert secret not in text and world.nylas.grants(nylas) == []


def test_mailbox_told_the_wrong_region_says_so(emulators):
    app, secret = entra_app(emulators, redirect=EU_CALLBACK)
    nylas = nylas_app(emulators, app, secret, region="eu")
    with pytest.raises(SignInRefused) as refused:
        sign_in(emulators, nylas_app_id=nylas, email="bob@contoso.com", region="us")
    assert refused.value.code == "unexpected-redirect" and "https://api.eu.nylas.com" in refused.value.description
