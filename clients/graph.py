"""Microsoft Graph applications, behind the ``GraphApps`` seam.

msgraph-sdk is async only, and its clients must be built inside the loop that
runs them. The service's use cases are plain synchronous code (they run in the
Functions worker's thread pool), so this facade owns one event loop on a daemon
thread, builds the GraphServiceClient inside it once, and hands coroutines to it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
import uuid
from collections.abc import Coroutine
from datetime import datetime
from typing import Any, TypeVar

import httpx
from azure.core.credentials import TokenCredential
from azure.core.exceptions import ClientAuthenticationError
from kiota_abstractions.api_error import APIError
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
from kiota_http.middleware.options import RetryHandlerOption
from msgraph.generated.applications.applications_request_builder import ApplicationsRequestBuilder
from msgraph.generated.applications.item.add_password.add_password_post_request_body import (
    AddPasswordPostRequestBody,
)
from msgraph.generated.applications.item.application_item_request_builder import ApplicationItemRequestBuilder
from msgraph.generated.applications.item.remove_password.remove_password_post_request_body import (
    RemovePasswordPostRequestBody,
)
from msgraph.generated.applications.item.set_verified_publisher.set_verified_publisher_post_request_body import (
    SetVerifiedPublisherPostRequestBody,
)
from msgraph.generated.models.api_application import ApiApplication
from msgraph.generated.models.application import Application
from msgraph.generated.models.informational_url import InformationalUrl
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.password_credential import PasswordCredential
from msgraph.generated.models.required_resource_access import RequiredResourceAccess
from msgraph.generated.models.resource_access import ResourceAccess
from msgraph.generated.models.service_principal import ServicePrincipal
from msgraph.generated.models.web_application import WebApplication
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph.graph_service_client import GraphServiceClient
from msgraph_core import GraphClientFactory

from clients.keyvault import service_token_error
from core.clock import to_utc
from core.errors import (
    DependencyRejected,
    DependencyUnavailable,
    GraphThrottled,
    NotOwned,
    PolicyRejectedLifetime,
    TooManyAppPasswords,
)
from core.ports import AppInfo, AppProfile, AppSpec, InfoUrls, NewPassword, PasswordInfo, VerifiedPublisher
from core.telemetry import count_call

log = logging.getLogger("clients.graph")
T = TypeVar("T")
DEPENDENCY = "microsoft-graph"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"


async def _count_answer(response: httpx.Response) -> None:
    """Every answer Graph gives (each try of msgraph's retry handler included), by status."""
    count_call(DEPENDENCY, response.status_code)


class GraphClient:
    def __init__(
        self,
        credential: TokenCredential,
        *,
        base_url: str = "https://graph.microsoft.com/v1.0",
        ca_bundle: str = "",
        timeout: float = 30.0,
        max_retries: int = 3,
        retry_base_seconds: float = 1.0,
        own_client_id: str = "",
    ) -> None:
        self._credential = credential
        self._own_client_id = own_client_id  # the service identity's appId, to recognise it among owners
        # msgraph's own retry handler retries 429/503/504 and honours Retry-After; we only size it.
        self._retry = RetryHandlerOption(delay=retry_base_seconds, max_retries=max_retries)
        self._base_url = base_url.rstrip("/")
        self._ca_bundle = ca_bundle
        self._timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="graph-loop", daemon=True)
        self._thread.start()
        self._client: GraphServiceClient | None = None

    # --- plumbing --------------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T], *, ownership: bool = True) -> T:
        return asyncio.run_coroutine_threadsafe(self._guard(coro, ownership=ownership), self._loop).result()

    async def _graph(self) -> GraphServiceClient:
        if self._client is None:
            verify: ssl.SSLContext | bool = True
            if self._ca_bundle:
                verify = ssl.create_default_context(cafile=self._ca_bundle)
            host = httpx.URL(self._base_url).host
            auth = AzureIdentityAuthenticationProvider(self._credential, scopes=[GRAPH_SCOPE], allowed_hosts=[host])
            http = GraphClientFactory.create_with_default_middleware(
                client=httpx.AsyncClient(
                    verify=verify, timeout=self._timeout, event_hooks={"response": [_count_answer]}
                ),
                options={RetryHandlerOption.get_key(): self._retry},
            )
            adapter = GraphRequestAdapter(auth, client=http)
            adapter.base_url = self._base_url
            self._client = GraphServiceClient(request_adapter=adapter)
        return self._client

    async def _guard(self, coro: Coroutine[Any, Any, T], *, ownership: bool = True) -> T:
        """Translate SDK and transport errors into core.errors, naming Graph's code but never a body.
        ``ownership``: a 403 Authorization_RequestDenied means "not an owner of the app" (OwnedBy); False
        for calls where it means something else (the verified publisher: the caller's permission or role)."""
        try:
            return await coro
        except ODataError as exc:
            raise _translate(exc, ownership=ownership) from None
        except APIError as exc:
            # A body that is not OData JSON (a gateway's HTML 502, say): kiota's own error type.
            status = exc.response_status_code or 0
            text = f"{status} answer without an OData error body"
            if status == 429 or status >= 500 or not status:
                raise DependencyUnavailable(DEPENDENCY, text, status=status) from None
            raise DependencyRejected(DEPENDENCY, text, status=status) from None
        except ClientAuthenticationError as exc:
            raise service_token_error(exc) from None
        except (httpx.TransportError, TimeoutError) as exc:
            raise DependencyUnavailable(DEPENDENCY, f"network error: {exc.__class__.__name__}") from None

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)

    # --- GraphApps ---------------------------------------------------------------------

    def find_by_unique_name(self, unique_name: str) -> AppInfo | None:
        async def go() -> Application | None:
            return await (await self._graph()).applications_with_unique_name(unique_name).get()

        return self._find(go())

    def find_by_app_id(self, app_id: str) -> AppInfo | None:
        async def go() -> Application | None:
            return await (await self._graph()).applications_with_app_id(app_id).get()

        return self._find(go())

    def _find(self, coro: Coroutine[Any, Any, Application | None]) -> AppInfo | None:
        try:
            app = self._run(coro)
        except DependencyRejected as exc:
            if exc.status == 404:
                return None
            raise
        return _app_info(app) if app else None

    def owned(self, object_id: str) -> bool:
        """Whether the service's identity is an owner of the app. Application.ReadWrite.OwnedBy reads
        every app in the directory but writes only the ones it owns (world-facts §4a, G3): ask
        before writing anything anywhere for an app we did not create."""
        own = self._own_client_id.lower()

        async def go() -> bool:
            client = await self._graph()
            page = await client.applications.by_application_id(object_id).owners.get()
            for _ in range(50):
                if page is None:
                    return False
                if any(str(getattr(o, "app_id", "") or "").lower() == own for o in page.value or []):
                    return True
                if not page.odata_next_link:
                    return False
                page = (
                    await client.applications.by_application_id(object_id).owners.with_url(page.odata_next_link).get()
                )
            return False

        return bool(own) and self._run(go())

    def list_tagged(self, tag: str, *, max_pages: int = 100) -> list[AppInfo]:
        """Apps carrying a tag (``tags/any``), following Graph's paging, that the service's identity
        owns: OwnedBy can read every app, so another deployment's tagged apps would show too."""
        quoted = tag.replace("'", "''")

        async def go() -> list[Application]:
            client = await self._graph()
            query = ApplicationsRequestBuilder.ApplicationsRequestBuilderGetQueryParameters(
                filter=f"tags/any(t:t eq '{quoted}')", top=100
            )
            config: RequestConfiguration[Any] = RequestConfiguration(query_parameters=query)
            page = await client.applications.get(config)
            found: list[Application] = []
            for _ in range(max_pages):
                if page is None:
                    break
                found += page.value or []
                if not page.odata_next_link:
                    break
                page = await client.applications.with_url(page.odata_next_link).get()
            return found

        return [_app_info(app) for app in self._run(go()) if app.id and self.owned(app.id)]

    def get(self, object_id: str) -> AppInfo:
        async def go() -> Application | None:
            return await (await self._graph()).applications.by_application_id(object_id).get()

        app = self._run(go())
        if app is None:
            raise DependencyUnavailable(DEPENDENCY, f"empty answer reading application {object_id}")
        return _app_info(app)

    def upsert(self, spec: AppSpec) -> AppInfo:
        async def go() -> Application | None:
            config: RequestConfiguration[Any] = RequestConfiguration()
            config.headers.add("Prefer", "create-if-missing")
            graph = await self._graph()
            return await graph.applications_with_unique_name(spec.unique_name).patch(_application(spec), config)

        created = self._run(go())
        if created is not None:  # 201: a new app, returned whole
            return _app_info(created)
        found = self.find_by_unique_name(spec.unique_name)  # 204: it existed and was updated
        if found is None:
            raise DependencyUnavailable(DEPENDENCY, f"app {spec.unique_name} updated but not readable yet")
        return found

    def update(self, object_id: str, spec: AppSpec) -> None:
        async def go() -> None:
            body = _application(spec)
            await (await self._graph()).applications.by_application_id(object_id).patch(body)

        self._run(go())

    def delete(self, object_id: str) -> None:
        async def go() -> None:
            await (await self._graph()).applications.by_application_id(object_id).delete()

        try:
            self._run(go())
        except DependencyRejected as exc:
            if exc.status != 404:
                raise
            # 404: already deleted, which is the goal, unless a read still finds it (doubt is safe).
            try:
                self.get(object_id)
            except DependencyRejected as gone:
                if gone.status == 404:
                    return
                raise
            raise DependencyUnavailable(
                DEPENDENCY, f"deleting app {object_id} answered 404 but it is still there"
            ) from None

    def ensure_service_principal(self, app_id: str) -> None:
        async def go() -> None:
            await (await self._graph()).service_principals.post(ServicePrincipal(app_id=app_id))

        try:
            self._run(go())
        except DependencyRejected as exc:
            if exc.status == 409 or "exist" in (exc.message or "").lower():
                return  # already there: that is the goal
            raise

    def add_password(self, object_id: str, display_name: str, end: datetime) -> NewPassword:
        async def go() -> PasswordCredential | None:
            body = AddPasswordPostRequestBody(
                password_credential=PasswordCredential(display_name=display_name, end_date_time=to_utc(end))
            )
            return await (await self._graph()).applications.by_application_id(object_id).add_password.post(body)

        made = self._run(go())
        if made is None or not made.secret_text or made.key_id is None:
            raise DependencyUnavailable(DEPENDENCY, "addPassword answered without a secret")
        return NewPassword(
            key_id=str(made.key_id),
            secret_text=made.secret_text,
            hint=made.hint or "",
            start=made.start_date_time,
            end=made.end_date_time,
        )

    def remove_password(self, object_id: str, key_id: str) -> None:
        async def go() -> None:
            body = RemovePasswordPostRequestBody(key_id=uuid.UUID(key_id))
            await (await self._graph()).applications.by_application_id(object_id).remove_password.post(body)

        try:
            self._run(go())
        except DependencyRejected as exc:
            # Graph answers 400/404 for a key that is already gone; confirm before calling it done.
            if exc.status not in (400, 404):
                raise
            try:
                still = any(p.key_id == key_id for p in self.get(object_id).passwords)
            except DependencyRejected as gone:
                if gone.status != 404:
                    raise
                return  # the whole app is gone, and the key with it
            if still:
                raise

    # --- an app's face to the people who consent (issue 14) ---------------------------------

    def access_token(self) -> str:
        """A Microsoft Graph token from this client's credential, to tell who is signed in (never logged)."""
        try:
            return self._credential.get_token(GRAPH_SCOPE).token
        except ClientAuthenticationError as exc:
            text = str(exc).splitlines()[0][:200] if str(exc) else exc.__class__.__name__
            raise DependencyRejected("entra-id", f"no Microsoft Graph token from this sign-in: {text}") from None

    def profile(self, object_id: str) -> AppProfile:
        async def go() -> Application | None:
            query = ApplicationItemRequestBuilder.ApplicationItemRequestBuilderGetQueryParameters(select=PROFILE)
            config: RequestConfiguration[Any] = RequestConfiguration(query_parameters=query)
            return await (await self._graph()).applications.by_application_id(object_id).get(config)

        app = self._run(go())
        if app is None:
            raise DependencyUnavailable(DEPENDENCY, f"empty answer reading application {object_id}")
        return _app_profile(app)

    def update_profile(
        self, object_id: str, *, info: InfoUrls | None = None, tags: tuple[str, ...] | None = None
    ) -> None:
        async def go() -> None:
            body = Application(
                info=(
                    InformationalUrl(
                        marketing_url=info.marketing_url or None,
                        privacy_statement_url=info.privacy_statement_url or None,
                        support_url=info.support_url or None,
                        terms_of_service_url=info.terms_of_service_url or None,
                    )
                    if info is not None
                    else None
                ),
                tags=list(tags) if tags is not None else None,
            )
            await (await self._graph()).applications.by_application_id(object_id).patch(body)

        self._run(go())

    def put_logo(self, object_id: str, content_type: str, data: bytes) -> None:
        async def go() -> None:
            # The image's own type: msgraph-sdk would send application/octet-stream, which Graph does not take.
            config: RequestConfiguration[Any] = RequestConfiguration()
            config.headers.add("Content-Type", content_type)
            await (await self._graph()).applications.by_application_id(object_id).logo.put(data, config)

        self._run(go())

    def set_verified_publisher(self, object_id: str, publisher_id: str) -> None:
        async def go() -> None:
            body = SetVerifiedPublisherPostRequestBody(verified_publisher_id=publisher_id)
            await (await self._graph()).applications.by_application_id(object_id).set_verified_publisher.post(body)

        self._run(go(), ownership=False)

    def unset_verified_publisher(self, object_id: str) -> None:
        async def go() -> None:
            await (await self._graph()).applications.by_application_id(object_id).unset_verified_publisher.post()

        self._run(go(), ownership=False)


# What ``profile`` reads ($select): one GET.
PROFILE = [
    "id",
    "appId",
    "signInAudience",
    "publisherDomain",
    "verifiedPublisher",
    "info",
    "tags",
    "requiredResourceAccess",
]


def _app_profile(app: Application) -> AppProfile:
    info = app.info
    vp = app.verified_publisher
    return AppProfile(
        object_id=app.id or "",
        app_id=app.app_id or "",
        sign_in_audience=app.sign_in_audience or "",
        publisher_domain=app.publisher_domain or "",
        verified_publisher=VerifiedPublisher(
            publisher_id=(vp.verified_publisher_id or "") if vp else "",
            display_name=(vp.display_name or "") if vp else "",
            added=vp.added_date_time if vp else None,
        ),
        info=InfoUrls(
            marketing_url=(info.marketing_url or "") if info else "",
            privacy_statement_url=(info.privacy_statement_url or "") if info else "",
            support_url=(info.support_url or "") if info else "",
            terms_of_service_url=(info.terms_of_service_url or "") if info else "",
        ),
        logo_url=(info.logo_url or "") if info else "",
        tags=tuple(app.tags or ()),
        required_resource_access=tuple(
            {
                "resourceAppId": str(r.resource_app_id or ""),
                "resourceAccess": [{"id": str(a.id or ""), "type": a.type or ""} for a in r.resource_access or ()],
            }
            for r in app.required_resource_access or ()
        ),
    )


def _application(spec: AppSpec) -> Application:
    return Application(
        display_name=spec.display_name,
        sign_in_audience=spec.sign_in_audience,
        web=WebApplication(redirect_uris=list(spec.redirect_uris)),
        required_resource_access=[
            RequiredResourceAccess(
                resource_app_id=r["resourceAppId"],
                resource_access=[ResourceAccess(id=uuid.UUID(a["id"]), type=a["type"]) for a in r["resourceAccess"]],
            )
            for r in spec.required_resource_access
        ],
        tags=list(spec.tags),
        notes=spec.notes or None,
        api=(
            ApiApplication(requested_access_token_version=spec.requested_access_token_version)
            if spec.requested_access_token_version is not None
            else None
        ),
    )


def _app_info(app: Application) -> AppInfo:
    return AppInfo(
        object_id=app.id or "",
        app_id=app.app_id or "",
        unique_name=app.unique_name or "",
        display_name=app.display_name or "",
        sign_in_audience=app.sign_in_audience or "",
        redirect_uris=tuple(app.web.redirect_uris or ()) if app.web else (),
        tags=tuple(app.tags or ()),
        passwords=tuple(
            PasswordInfo(
                key_id=str(p.key_id),
                display_name=p.display_name or "",
                hint=p.hint or "",
                start=p.start_date_time,
                end=p.end_date_time,
            )
            for p in (app.password_credentials or ())
        ),
    )


def _translate(exc: ODataError, *, ownership: bool = True) -> Exception:
    status = exc.response_status_code or 0
    code = (exc.error.code if exc.error else None) or ""
    message = (exc.error.message if exc.error else None) or ""
    summary = f"{status} {code}: {message}"[:300]
    if code == "CredentialInvalidLifetimeAsPerAppPolicy":
        # The message names the policy's id, never its maximum (G8): the engine steps down a ladder.
        return PolicyRejectedLifetime(DEPENDENCY, summary, status=status, error_code=code)
    if code == "TooManyAppPasswords":
        return TooManyAppPasswords(DEPENDENCY, summary, status=status, error_code=code)
    headers = {k.lower(): v for k, v in (exc.response_headers or {}).items()}
    if status == 429 and headers.get("x-ms-throttle-scope"):
        # A quota of the whole tenant or app (60 writes a minute to personal-account apps, G11),
        # not of this one call: the caller slows the whole pace (rotation.pacing).
        return GraphThrottled(
            DEPENDENCY,
            summary,
            status=status,
            error_code=code or "TooManyRequests",
            retry_after=_seconds(headers.get("retry-after")),
            scope=headers["x-ms-throttle-scope"],
        )
    if status == 403 and code == "Authorization_RequestDenied" and ownership:
        return NotOwned(
            "the service's identity does not own this app registration (Application.ReadWrite.OwnedBy); "
            "an administrator must add it as an owner (docs/deploy.md)"
        )
    if status == 429 or status >= 500 or code == "Directory_ConcurrencyViolation":
        return DependencyUnavailable(DEPENDENCY, summary, status=status, error_code=code)
    return DependencyRejected(DEPENDENCY, summary, status=status, error_code=code)


def _seconds(raw: str | None) -> float | None:
    try:
        return max(0.0, float(raw)) if raw else None
    except ValueError:
        return None
