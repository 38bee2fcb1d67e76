"""Nylas, behind the ``NylasGateway`` seam: three targets, one interface.

- v3-connector: PATCH/GET {api}/v3/connectors/microsoft with the app's API key.
- v2-integration: PATCH/GET {beta}/connect/integrations/microsoft with HTTP Basic
  (Nylas client id and secret), the v2-era API the official v2 Python SDK wraps.
- manual: the v2 dashboard's "Office365 Auth" setting has no public API, so a
  person pastes the secret and confirms; this gateway only says so.

Neither API is idempotent by key, but a whole-settings PATCH repeated gives the
same state, so a retry is safe. After a PATCH we read back the client id Nylas
holds (the secret is never echoed) to catch a write that did not land.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests

from clients.interfaces import NylasApp, PushStatus
from clients.retrying import default_verify, http_session, send_with_retries
from core.clock import Sleep, real_sleep
from core.errors import DependencyRejected, DependencyUnavailable

DEPENDENCY = "nylas"


class NylasGatewayHttp:
    def __init__(
        self,
        *,
        v3_api: Mapping[str, str],
        v2_api: Mapping[str, str],
        ca_bundle: str = "",
        timeout: float = 30.0,
        max_retries: int = 3,
        sleep: Sleep = real_sleep,
    ) -> None:
        self._v3 = dict(v3_api)
        self._v2 = dict(v2_api)
        self._verify = default_verify(ca_bundle)
        self._timeout = timeout
        self._max_retries = max_retries
        self._sleep = sleep
        self._session = http_session()

    def push(self, app: NylasApp, client_id: str, client_secret: str, tenant_id: str) -> PushStatus:
        if app.target == "manual":
            return PushStatus.NEEDS_CONFIRMATION
        if app.target == "v3-connector":
            # Nested objects are replaced, not merged: always send the whole settings object.
            settings = {"client_id": client_id, "client_secret": client_secret, "tenant": tenant_id}
        else:
            settings = {"client_id": client_id, "client_secret": client_secret}
        self._send("PATCH", app, {"settings": settings})
        held = self.held_client_id(app)
        if held != client_id:
            raise DependencyUnavailable(DEPENDENCY, f"Nylas app {app.app_id} still holds another client id")
        return PushStatus.PUSHED

    def held_client_id(self, app: NylasApp) -> str | None:
        if app.target == "manual":
            return None
        body = self._send("GET", app, None)
        data = body.get("data", body) if app.target == "v3-connector" else body
        settings = data.get("settings") or {}
        value = settings.get("client_id")
        return str(value) if value else None

    def _send(self, method: str, app: NylasApp, payload: dict[str, Any] | None) -> dict[str, Any]:
        if app.target == "v3-connector":
            url = f"{self._base(self._v3, app.region)}/v3/connectors/microsoft"
            headers = {"Authorization": f"Bearer {app.credential}"}
            auth = None
        else:
            url = f"{self._base(self._v2, app.region)}/connect/integrations/microsoft"
            headers = {}
            auth = (app.app_id, app.credential)
        headers["Accept"] = "application/json"

        def send() -> requests.Response:
            return self._session.request(
                method, url, json=payload, headers=headers, auth=auth, timeout=self._timeout, verify=self._verify
            )

        try:
            response = send_with_retries(send, max_retries=self._max_retries, sleep=self._sleep)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise DependencyUnavailable(DEPENDENCY, f"network error: {exc.__class__.__name__}") from None
        if response.status_code >= 400:
            raise _error(app, method, response)
        try:
            parsed: dict[str, Any] = response.json()
        except ValueError:
            raise DependencyUnavailable(DEPENDENCY, f"{method} answered {response.status_code} without JSON") from None
        return parsed

    @staticmethod
    def _base(bases: Mapping[str, str], region: str) -> str:
        try:
            return bases[region]
        except KeyError:
            raise DependencyRejected(DEPENDENCY, f"unknown Nylas region {region!r}") from None


def _error(app: NylasApp, method: str, response: requests.Response) -> Exception:
    """Nylas v3 says {"error":{"type","message"}}, v2 says {"message","type"}; keep type and message only."""
    kind, message = "", ""
    try:
        body = response.json()
        error = body.get("error", body) if isinstance(body, dict) else {}
        if isinstance(error, dict):
            kind, message = str(error.get("type", "")), str(error.get("message", ""))
    except ValueError:
        pass
    text = f"{method} {app.target} for Nylas app {app.app_id}: {response.status_code} {kind} {message}".strip()[:300]
    status = response.status_code
    if status == 429 or status >= 500:
        return DependencyUnavailable(DEPENDENCY, text, status=status, error_code=kind)
    return DependencyRejected(DEPENDENCY, text, status=status, error_code=kind)
