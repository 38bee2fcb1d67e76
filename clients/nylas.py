"""Nylas, behind the ``NylasGateway`` seam: four targets, one interface.

- v3-credential: the tenant's own connector credential under the application's
  Microsoft connector (``/v3/connectors/microsoft/creds[/{id}]``, world-facts §2, N5-N8).
  Its name is unique per tenant, so a create repeated after a lost answer finds the
  first one by name instead of making a second. PATCH replaces ``credential_data``
  whole, and its answer is the credential as Nylas stored it: that is the read-back
  (Nylas never echoes the secret, nor the client id: only a hash).
- v3-connector: PATCH/GET {api}/v3/connectors/microsoft with the app's API key; the
  connector is created (``POST /v3/connectors``) when the application has none.
- v2-integration: PATCH/GET {beta}/connect/integrations/microsoft with HTTP Basic
  (Nylas client id and secret), the v2-era API the official v2 Python SDK wraps.
- manual: the v2 dashboard's "Office365 Auth" setting has no public API, so a
  person pastes the secret and confirms; this gateway only says so.

None of these writes is idempotent by key, but each replaces a whole object, so a
retry gives the same state.

Doubt is safe: once a write may have landed (it was sent and answered 2xx, 5xx, 429 after our
retries, or not at all), every later failure of the same push (the read-back included) raises
``NylasStateUnknown``: Nylas may hold either secret, and the engine keeps both. Only a 4xx answer
to the write itself says it did not land.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import requests

from clients.retrying import default_verify, http_session, send_with_retries
from core.clock import Sleep, real_sleep
from core.errors import DependencyError, DependencyRejected, DependencyUnavailable, NylasStateUnknown
from core.ports import ConnectorInfo, ConnectorState, NylasApp, PushResult, PushStatus

DEPENDENCY = "nylas"
CONNECTOR = "/v3/connectors/microsoft"
CREDS = CONNECTOR + "/creds"
LIST_PAGE = 50


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
        self._session = http_session(dependency="nylas")
        # Within one push (one thread: the queue function runs rotations on many): a write may have landed.
        self._push_state = threading.local()

    # --- NylasGateway ------------------------------------------------------------------

    def connector(self, app: NylasApp) -> ConnectorInfo:
        if not app.target.startswith("v3-"):
            return ConnectorInfo(ConnectorState.NOT_APPLICABLE)
        try:
            body = self._v3_send("GET", app, CONNECTOR, None)
        except DependencyRejected as exc:
            if exc.status == 404:
                return ConnectorInfo(ConnectorState.ABSENT)
            raise
        settings = (body.get("data") or {}).get("settings") or {}
        return ConnectorInfo(ConnectorState.PRESENT, str(settings.get("client_id") or ""))

    def push(self, app: NylasApp, client_id: str, client_secret: str, tenant_id: str) -> PushResult:
        if app.target == "manual":
            return PushResult(PushStatus.NEEDS_CONFIRMATION)
        self._push_state.maybe_landed = False
        try:
            return self._push(app, client_id, client_secret, tenant_id)
        except DependencyError as exc:
            if not self._push_state.maybe_landed or isinstance(exc, NylasStateUnknown):
                raise
            raise NylasStateUnknown(
                DEPENDENCY,
                f"a write for Nylas app {app.app_id} may have landed, then: {exc.message}",
                status=exc.status,
                error_code=exc.error_code,
            ) from None

    def _push(self, app: NylasApp, client_id: str, client_secret: str, tenant_id: str) -> PushResult:
        if app.target == "v3-credential":
            return self._push_credential(
                app, {"client_id": client_id, "client_secret": client_secret, "tenant": tenant_id}
            )
        if app.target == "v3-connector":
            # Nested objects are replaced, not merged: always send the whole settings object.
            settings = {"client_id": client_id, "client_secret": client_secret, "tenant": tenant_id}
            try:
                self._v3_send("PATCH", app, CONNECTOR, {"settings": settings})
            except DependencyRejected as exc:
                if exc.status != 404:
                    raise
                # No Microsoft connector yet (or deleted by hand): create it with our app.
                self._v3_send(
                    "POST",
                    app,
                    "/v3/connectors",
                    {"name": "Microsoft", "provider": "microsoft", "settings": settings, "scope": list(app.scopes)},
                )
        else:
            self._v2_send("PATCH", app, {"settings": {"client_id": client_id, "client_secret": client_secret}})
        held = self.held_client_id(app)
        if held != client_id:
            raise DependencyUnavailable(DEPENDENCY, f"Nylas app {app.app_id} still holds another client id")
        return PushResult(PushStatus.PUSHED)

    def held_client_id(self, app: NylasApp) -> str | None:
        if app.target in ("manual", "v3-credential"):
            return None  # no API (manual), or Nylas keeps only a hash of credential_data
        if app.target == "v3-connector":
            data = self._v3_send("GET", app, CONNECTOR, None).get("data") or {}
        else:
            data = self._v2_send("GET", app, None)
        settings = data.get("settings") or {}
        value = settings.get("client_id")
        return str(value) if value else None

    def delete_credential(self, app: NylasApp) -> bool:
        if app.target != "v3-credential":
            return False
        ids = [app.credential_id] if app.credential_id else []
        found = self._find_credential(app)
        if found and found not in ids:
            ids.append(found)
        deleted = False
        for credential_id in ids:
            try:
                self._v3_send("DELETE", app, f"{CREDS}/{credential_id}", None)
                deleted = True
            except DependencyRejected as exc:
                if exc.status != 404:
                    raise
        if self._find_credential(app):
            # A 404 (or a lost answer) is not proof: the credential is still listed under its name.
            raise DependencyUnavailable(DEPENDENCY, f"credential {app.credential_name} is still there after DELETE")
        return deleted

    # --- v3-credential -----------------------------------------------------------------

    def _push_credential(self, app: NylasApp, data: dict[str, str]) -> PushResult:
        if app.credential_id:
            try:
                return self._patch_credential(app, app.credential_id, data, recreated=False)
            except DependencyRejected as exc:
                if exc.status != 404:
                    raise
                # Deleted at Nylas by hand (or never there): make it again below, and say so.
        found = self._find_credential(app)
        if found:
            return self._patch_credential(
                app, found, data, recreated=bool(app.credential_id) and found != app.credential_id
            )
        body = self._v3_send(
            "POST",
            app,
            CREDS,
            {"name": app.credential_name, "credential_type": "connector", "credential_data": data},
        )
        made = body.get("data") or {}
        if not made.get("id"):
            raise DependencyUnavailable(DEPENDENCY, f"creating credential {app.credential_name} answered without an id")
        return PushResult(PushStatus.PUSHED, str(made["id"]), recreated=bool(app.credential_id))

    def _patch_credential(
        self, app: NylasApp, credential_id: str, data: dict[str, str], *, recreated: bool
    ) -> PushResult:
        # credential_data is replaced whole (N8): client id, secret and tenant go together.
        body = self._v3_send("PATCH", app, f"{CREDS}/{credential_id}", {"credential_data": data})
        stored = body.get("data") or {}
        if stored.get("id") != credential_id or stored.get("credential_type", "connector") != "connector":
            raise DependencyUnavailable(DEPENDENCY, f"Nylas answered the update of credential {credential_id} oddly")
        return PushResult(PushStatus.PUSHED, credential_id, recreated=recreated)

    def _find_credential(self, app: NylasApp) -> str:
        """The id of the credential named ``app.credential_name``, or "" (the list has no cursor: pages
        by offset, N7)."""
        offset = 0
        while True:
            body = self._v3_send("GET", app, f"{CREDS}?limit={LIST_PAGE}&offset={offset}", None)
            page = body.get("data") or []
            for item in page:
                if isinstance(item, dict) and item.get("name") == app.credential_name:
                    return str(item.get("id") or "")
            size = int(body.get("limit") or LIST_PAGE)
            if len(page) < size or not page:
                return ""
            offset += len(page)

    # --- transport ---------------------------------------------------------------------

    def _v3_send(self, method: str, app: NylasApp, path: str, payload: dict[str, Any] | None) -> dict[str, Any]:
        url = f"{self._base(self._v3, app.region)}{path}"
        return self._send(method, app, url, payload, {"Authorization": f"Bearer {app.credential}"}, None)

    def _v2_send(self, method: str, app: NylasApp, payload: dict[str, Any] | None) -> dict[str, Any]:
        url = f"{self._base(self._v2, app.region)}/connect/integrations/microsoft"
        return self._send(method, app, url, payload, {}, (app.app_id, app.credential))

    def _send(
        self,
        method: str,
        app: NylasApp,
        url: str,
        payload: dict[str, Any] | None,
        headers: dict[str, str],
        auth: tuple[str, str] | None,
    ) -> dict[str, Any]:
        headers = {**headers, "Accept": "application/json"}

        def send() -> requests.Response:
            return self._session.request(
                method, url, json=payload, headers=headers, auth=auth, timeout=self._timeout, verify=self._verify
            )

        write = method != "GET"
        try:
            response = send_with_retries(send, max_retries=self._max_retries, sleep=self._sleep)
        except (requests.ConnectionError, requests.Timeout) as exc:
            if write:
                self._push_state.maybe_landed = True  # sent, answer lost
            raise DependencyUnavailable(DEPENDENCY, f"network error: {exc.__class__.__name__}") from None
        if write and not 400 <= response.status_code < 500:
            self._push_state.maybe_landed = True  # applied (2xx), or perhaps applied (5xx)
        if response.status_code >= 400:
            raise _error(app, method, response)
        try:
            parsed: dict[str, Any] = response.json()
        except ValueError:
            raise DependencyUnavailable(DEPENDENCY, f"{method} answered {response.status_code} without JSON") from None
        return parsed if isinstance(parsed, dict) else {}

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
