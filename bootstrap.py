"""The composition root: builds every outside-system client and use case from settings, the one
place where SDKs meet config. It sits above every layer (core, rotation, provisioning, clients);
nothing below imports it (tests/test_layers.py).

The function triggers and the operator CLI call ``services()``; tests and the demo
call ``build_services`` with their own clock, sleep or notifier and ``use_services``.

The SDKs (msgraph alone costs about 0.3 s) are imported when the services are first built,
not when this module is: the Functions host imports function_app to index the triggers, and
that import stays as cheap as azure.functions itself (docs/benchmarks.md, cold start).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

from core.clock import Clock, Sleep, SystemClock, real_sleep
from core.ports import GraphPace, LeaseManager, Notifier, RotationQueue, RotationRequest
from core.settings import Settings, SettingsError
from provisioning.manifest import load_manifest
from provisioning.provision import Provisioner
from provisioning.retire import Retirement
from rotation.engine import Dependencies, Policy, RotationEngine

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from clients.graph import GraphClient
    from clients.keyvault import KeyVaultStore


@dataclass
class Services:
    settings: Settings
    deps: Dependencies
    engine: RotationEngine
    provisioner: Provisioner
    retirement: Retirement
    queue: RotationQueue
    pace: GraphPace
    vault: KeyVaultStore
    graph: GraphClient


def service_credential(settings: Settings) -> TokenCredential:
    """The service's own identity: a managed identity in Azure, an app secret only for local emulators."""
    options: dict[str, object] = {
        "authority": settings.authority_host,
        "retry_total": settings.http_max_retries,
        "retry_backoff_factor": settings.http_retry_base_seconds,
    }
    if not settings.known_authority:
        options["disable_instance_discovery"] = True
    if settings.ca_bundle:
        options["connection_verify"] = settings.ca_bundle
    if settings.client_secret:
        from azure.identity import ClientSecretCredential

        return ClientSecretCredential(settings.tenant_id, settings.client_id, settings.client_secret, **options)
    from azure.identity import ManagedIdentityCredential

    return ManagedIdentityCredential(client_id=settings.client_id or None)


_NO_STORAGE = (
    "storage is not configured{why}: set AzureWebJobsStorage (a connection string locally; `make sandbox` writes "
    "one for Azurite) or AzureWebJobsStorage__accountName"
)


class NoStorage:
    """The lease manager, the queue and the pace of services built without storage (read-only
    callers): every use fails, before any write, with the setting to add."""

    def _refuse(self, what: str) -> NoReturn:
        raise SettingsError(_NO_STORAGE.format(why=f" ({what} needs it)"))

    def hold(self, tenant: str) -> NoReturn:
        self._refuse("the tenant's lease")

    def check_current(self) -> NoReturn:
        self._refuse("the lease a write must hold")

    def send(self, request: RotationRequest, *, delay_seconds: float = 0.0) -> NoReturn:
        self._refuse("the rotation queue")

    def reserve(self, count: int, interval: float) -> NoReturn:
        self._refuse("the Graph pace")

    def slow_down(self, seconds: float) -> NoReturn:
        self._refuse("the Graph pace")

    def paused_until(self) -> NoReturn:
        self._refuse("the Graph pace")


def build_services(
    settings: Settings,
    *,
    clock: Clock | None = None,
    sleep: Sleep | None = None,
    notifier: Notifier | None = None,
    credential: TokenCredential | None = None,
    storage: bool = True,
) -> Services:
    """Every client and use case. ``storage=False`` (read-only callers: the CLI's plan, status and
    cleanup dry run) builds no storage client and needs no storage setting; the lease manager, the
    queue and the pace are then a stand-in that refuses every use, naming the missing setting."""
    from clients.alerts import CountedNotifier, LogNotifier, WebhookNotifier
    from clients.entra import EntraVerifier
    from clients.fencing import WRITES, Fenced
    from clients.graph import GraphClient
    from clients.keyvault import KeyVaultStore
    from clients.nylas import NylasGatewayHttp
    from clients.storage import BlobGraphPace, BlobLeaseManager, StorageRotationQueue

    if storage and not settings.storage.configured:
        raise SettingsError(_NO_STORAGE.format(why=""))
    credential = credential or service_credential(settings)
    sleep = sleep or real_sleep
    timeout = float(settings.http_timeout_seconds)
    retries = settings.http_max_retries
    backoff = settings.http_retry_base_seconds
    graph = GraphClient(
        credential,
        base_url=settings.graph_base_url,
        ca_bundle=settings.ca_bundle,
        timeout=timeout,
        max_retries=retries,
        retry_base_seconds=backoff,
        own_client_id=settings.client_id,
    )
    vault = KeyVaultStore(
        settings.key_vault_url,
        credential,
        ca_bundle=settings.ca_bundle,
        verify_challenge_resource=settings.verify_challenge_resource,
        timeout=timeout,
        max_retries=retries,
        retry_base_seconds=backoff,
    )
    if notifier is None:
        notifier = (
            WebhookNotifier(
                settings.alert_webhook_url,
                settings.alert_webhook_kind,
                ca_bundle=settings.ca_bundle,
                timeout=float(settings.http_timeout_seconds),
            )
            if settings.alert_webhook_url
            else LogNotifier()
        )
    leases: LeaseManager = (
        BlobLeaseManager(
            settings.storage, settings.lease_container, seconds=settings.lease_seconds, credential=credential
        )
        if storage
        else NoStorage()
    )
    nylas = NylasGatewayHttp(
        v3_api=settings.nylas_v3_api,
        v2_api=settings.nylas_v2_api,
        ca_bundle=settings.ca_bundle,
        timeout=timeout,
        max_retries=settings.http_max_retries,
        sleep=sleep,
    )
    # Every write checks the lease its run holds first (clients.fencing).
    fence = leases.check_current
    deps = Dependencies(
        graph=Fenced(graph, WRITES["graph"], fence),
        vault=Fenced(vault, WRITES["vault"], fence),
        verifier=EntraVerifier(
            settings.tenant_id,
            authority_host=settings.authority_host,
            ca_bundle=settings.ca_bundle,
            timeout=timeout,
            instance_discovery=settings.known_authority,
            max_retries=retries,
            retry_base_seconds=backoff,
        ),
        nylas=Fenced(nylas, WRITES["nylas"], fence),
        leases=leases,
        notifier=CountedNotifier(notifier),
        clock=clock or SystemClock(),
        sleep=sleep,
    )
    policy = Policy(
        tenant_id=settings.tenant_id,
        secret_prefix=settings.secret_prefix,
        verify_budget_seconds=float(settings.verify_budget_seconds),
        manual_escalate_days=settings.manual_escalate_days,
        stuck_after_hours=settings.stuck_after_hours,
    )
    engine = RotationEngine(deps, policy)
    provisioner = Provisioner(
        engine, load_manifest(settings.permission_manifest_path), authority_host=settings.authority_host
    )
    queue: RotationQueue = NoStorage()
    pace: GraphPace = NoStorage()
    if storage:
        queue = StorageRotationQueue(settings.storage, settings.rotation_queue, credential=credential)
        pace = BlobGraphPace(settings.storage, settings.lease_container, deps.clock, credential=credential)
    return Services(settings, deps, engine, provisioner, Retirement(engine), queue, pace, vault, graph)


_lock = threading.Lock()
_services: Services | None = None


def services(*, storage: bool = True) -> Services:
    """The process-wide services, built on first use (not at import: cold start stays cheap).
    ``storage=False`` (a read-only caller): the installed services if any, else a build without
    storage that is not kept (a later caller that needs storage gets a full build)."""
    global _services
    with _lock:
        if _services is None:
            if not storage:
                return build_services(Settings.from_env(), storage=False)
            _services = build_services(Settings.from_env())
        return _services


def use_services(value: Services | None) -> None:
    """Install (or, with None, forget) the process-wide services: tests, the demo and the CLI."""
    global _services
    with _lock:
        _services = value
