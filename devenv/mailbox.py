"""A simulated mail user for tests, the demo and the simulation.

``sign_in`` plays the browser of a person connecting their Microsoft mailbox to a Nylas v3
application through Nylas hosted auth, hop by hop over HTTPS against the emulators (no automatic
redirects): Nylas ``/v3/connect/auth`` -> Microsoft's sign-in page -> Nylas's real callback
(``https://api.us.nylas.com/v3/connect/callback`` / ``https://api.eu.nylas.com/...``, mapped onto
the Nylas emulator) -> the application's redirect URI, whose ``code`` the application then exchanges
at ``/v3/connect/token`` with its API key. The result is the grant id.

``refresh_all`` is Nylas refreshing every user's Microsoft token now (in-process, through the World):
the oracle for "do the users still work after this rotation?".

Only ``emulators`` and the World are used, never the service's packages. No secret, code or token
ever appears in an exception's text.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from emulators import Emulators, World

NYLAS_PUBLIC_APIS = ("https://api.us.nylas.com", "https://api.eu.nylas.com")
DEFAULT_REDIRECT_URI = "https://app.example/oauth/callback"
_TIMEOUT = 10
_AADSTS = re.compile(r"\b(AADSTS\d+)\b")
_CONFIG = re.compile(r"\$Config=(\{.*?\});", re.DOTALL)


class SignInRefused(Exception):
    """A hop of the sign-in refused the user.

    ``code`` is the most specific reason known: an AADSTS code when Microsoft gave one (also when
    Nylas only said ``provider_code_request_failed``: the AADSTS code then comes from Nylas's own log
    in the World), else the service's error type. ``hop`` names the hop (``nylas.connect_auth``,
    ``entra.authorize``, ``nylas.connect_callback``, ``nylas.connect_token``)."""

    def __init__(self, code: str, description: str, hop: str = "") -> None:
        reason = description if description.startswith(code) else f"{code}: {description}"
        super().__init__(f"sign-in refused at {hop or 'an unknown hop'}: {reason}")
        self.code = code
        self.description = description
        self.hop = hop


def sign_in(
    emulators: Emulators,
    *,
    nylas_app_id: str,
    email: str,
    credential_id: str | None = None,
    region: str = "us",
    scopes: list[str] | None = None,
    redirect_uri: str = DEFAULT_REDIRECT_URI,
) -> str:
    """Connect ``email``'s mailbox to the Nylas v3 app through Microsoft; returns the grant id.

    ``credential_id`` picks a connector credential (else Nylas uses the active one); ``scopes`` are
    the scopes asked of Nylas (else the connector's defaults); ``region`` is the Nylas app's region,
    whose public callback host is mapped onto the emulator. Raises ``SignInRefused``."""
    world = emulators.world
    app = world.nylas.apps.get(nylas_app_id)
    if app is None or app.kind != "v3":
        raise SignInRefused("unknown-app", f"no Nylas v3 application {nylas_app_id!r} in the world", "setup")
    nylas = emulators.urls["nylas"]
    public_api = NYLAS_PUBLIC_APIS[1] if region.lower() == "eu" else NYLAS_PUBLIC_APIS[0]
    app_state = secrets.token_urlsafe(16)
    params = {
        "client_id": nylas_app_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "provider": "microsoft",
        "login_hint": email,
        "state": app_state,
    }
    if scopes:
        params["scope"] = " ".join(scopes)
    if credential_id:
        params["credential_id"] = credential_id
    ca = emulators.ca_path
    with requests.Session() as browser:

        def hop(hop_name: str, url: str, query: dict[str, str] | None = None) -> str:
            # verify per request: a session's own verify loses to REQUESTS_CA_BUNDLE from the environment
            answer = browser.get(url, params=query, allow_redirects=False, timeout=_TIMEOUT, verify=ca)
            if 300 <= answer.status_code < 400 and answer.headers.get("Location"):
                return str(answer.headers["Location"])
            code, description = _refusal(answer)
            raise SignInRefused(code, description, hop_name)

        to_microsoft = hop("nylas.connect_auth", f"{nylas}/v3/connect/auth", params)
        to_nylas = hop("entra.authorize", to_microsoft)
        if not to_nylas.startswith(f"{public_api}/v3/connect/callback"):
            other = [api for api in NYLAS_PUBLIC_APIS if to_nylas.startswith(f"{api}/v3/connect/callback")]
            where = f"Nylas's callback at {other[0]}, not {public_api} (region {region!r})" if other else "elsewhere"
            raise SignInRefused("unexpected-redirect", f"Microsoft sent the user {where}", "entra.authorize")
        to_app = hop("nylas.connect_callback", nylas + to_nylas[len(public_api) :])
        if not to_app.startswith(redirect_uri):
            raise SignInRefused("unexpected-redirect", "Nylas sent the user somewhere else than the app", "nylas")
        back = {k: v[0] for k, v in parse_qs(urlsplit(to_app).query).items()}
        if back.get("state") != app_state:
            raise SignInRefused("state-mismatch", "the state the app sent did not come back", "nylas.connect_callback")
        if back.get("error"):
            description = back.get("error_description", "")
            code = _aadsts(description) or _logged_provider_error(world, nylas_app_id) or back["error"]
            raise SignInRefused(code, description or back["error"], "nylas.connect_callback")
        exchange = browser.post(
            f"{nylas}/v3/connect/token",
            json={
                "client_id": nylas_app_id,
                "client_secret": app.credential,
                "grant_type": "authorization_code",
                "code": back.get("code", ""),
                "redirect_uri": redirect_uri,
            },
            timeout=_TIMEOUT,
            verify=ca,
        )
        if exchange.status_code != 200:
            code, description = _refusal(exchange)
            raise SignInRefused(code, description, "nylas.connect_token")
        return str(exchange.json()["grant_id"])


def refresh_all(world: World) -> dict[tuple[str, str], tuple[bool, str]]:
    """Every grant of every Nylas application refreshed now, as Nylas would, with the secret it
    holds now: {(nylas app id, grant id): (ok, AADSTS code or reason)}."""
    out: dict[tuple[str, str], tuple[bool, str]] = {}
    for app_id in list(world.nylas.apps):
        for grant in world.nylas.grants(app_id):
            out[(app_id, grant.id)] = world.nylas.refresh_grant(app_id, grant.id)
    return out


def _refusal(answer: requests.Response) -> tuple[str, str]:
    """(code, description) from an error answer of any hop: Nylas v3 JSON, Nylas token JSON, Entra
    JSON, or Entra's error page."""
    text = answer.text
    body: Any = None
    if "json" in answer.headers.get("Content-Type", ""):
        try:
            body = answer.json()
        except ValueError:
            body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):  # Nylas v3 {"request_id","error":{"type","message"}}
            return str(error.get("type", answer.status_code)), str(error.get("message", ""))
        if error is not None:  # Entra or Nylas token endpoint
            description = str(body.get("error_description", ""))
            return _aadsts(description) or str(error), description.split(" Trace ID:")[0]
    found = _CONFIG.search(text)
    if found:  # Entra's sign-in error page carries $Config with the message
        try:
            config = json.loads(found.group(1))
        except ValueError:
            config = {}
        message = str(config.get("strServiceExceptionMessage", ""))
        code = _aadsts(message) or message.split(":", 1)[0] or str(answer.status_code)
        return code, message
    return str(answer.status_code), f"unexpected answer {answer.status_code}"


def _aadsts(text: str) -> str:
    found = _AADSTS.search(text)
    return found.group(1) if found else ""


def _logged_provider_error(world: World, app_id: str) -> str:
    """What Nylas logged when Microsoft refused to redeem the code (Nylas tells the app only 45001)."""
    with world.lock:
        app = world.nylas.apps.get(app_id)
        return app.provider_errors[-1][1] if app and app.provider_errors else ""
