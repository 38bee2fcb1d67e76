"""Azure Storage: the per-tenant lease (a blob lease) and the rotation queue.

The same account the Functions host uses (AzureWebJobsStorage): a connection
string locally (Azurite), identity-based URIs in Azure.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from azure.core import MatchConditions
from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.storage.blob import BlobLeaseClient, BlobServiceClient
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from clients.retrying import pooled_transport
from core.clock import Clock
from core.errors import DependencyUnavailable, LeaseBusy, LeaseLost
from core.ports import RotationRequest
from core.settings import StorageSettings

log = logging.getLogger("clients.storage")
T = TypeVar("T")
DEPENDENCY = "storage"


def _blob_service(storage: StorageSettings, credential: TokenCredential | None) -> BlobServiceClient:
    """Every answer (each try, retries included) is counted as ``storage`` in
    ``rotator.dependency.calls``: an app that lost its storage role fails here first. Lease 409s
    and a first run's 404 are normal answers, counted like the others."""
    transport = pooled_transport(dependency=DEPENDENCY)
    if storage.connection_string:
        return BlobServiceClient.from_connection_string(storage.connection_string, transport=transport)
    return BlobServiceClient(storage.blob_service_uri, credential=credential, transport=transport)


class BlobLease:
    """A held lease, renewed on a timer thread (every third of its duration, each renewal tried a
    few times: a storage blip is not a lost lease). ``check`` renews it now: a lease that was
    broken, taken over or let expire cannot be renewed, and the run stops before its next write."""

    RENEW_TRIES = 3

    def __init__(self, client: BlobLeaseClient, tenant: str, seconds: int) -> None:
        self._client = client
        self._tenant = tenant
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._renewing = threading.Lock()
        self._thread = threading.Thread(target=self._renew, args=(seconds / 3,), name=f"lease-{tenant}", daemon=True)
        self._thread.start()

    def _renew_once(self, tries: int) -> bool:
        for attempt in range(tries):
            try:
                with self._renewing:
                    self._client.renew()
                return True
            except HttpResponseError as exc:
                if exc.status_code == 409:  # broken, or another lease id: certainly not ours any more
                    break
            except Exception:  # a blip: try again, a little later
                pass
            if attempt + 1 < tries:
                self._stop.wait(0.5 * (attempt + 1))
        return False

    def _renew(self, every: float) -> None:
        while not self._stop.wait(every):
            if not self._renew_once(self.RENEW_TRIES):
                log.warning("lease renewal failed", extra={"tenant": self._tenant, "step": "lease"})
                self._lost.set()
                return

    def check(self) -> None:
        if self._lost.is_set() or not self._renew_once(self.RENEW_TRIES):
            self._lost.set()
            raise LeaseLost(f"lost the lease of tenant {self._tenant}; stopping before the next write")

    def release(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(Exception):  # an expired lease frees itself
            self._client.release()


class BlobLeaseManager:
    def __init__(
        self, storage: StorageSettings, container: str, *, seconds: int = 30, credential: TokenCredential | None = None
    ) -> None:
        self._service = _blob_service(storage, credential)
        self._container = self._service.get_container_client(container)
        self._seconds = seconds
        self._ready = False
        self._held = threading.local()  # the lease this thread holds, for check_current

    def _ensure_container(self) -> None:
        if not self._ready:
            with contextlib.suppress(ResourceExistsError):
                self._container.create_container()
            self._ready = True

    @contextlib.contextmanager
    def hold(self, tenant: str) -> Iterator[BlobLease]:
        try:
            self._ensure_container()
            blob = self._container.get_blob_client(tenant)
            lease_client = BlobLeaseClient(blob)
            try:
                lease_client.acquire(lease_duration=self._seconds)
            except ResourceNotFoundError:
                # The tenant's first run: make its (empty) lease blob, then lease it. The blob
                # stays, so every later run costs one acquire and one release.
                with contextlib.suppress(ResourceExistsError):
                    blob.upload_blob(b"", overwrite=False)
                lease_client.acquire(lease_duration=self._seconds)
        except HttpResponseError as exc:
            if exc.status_code == 409:
                raise LeaseBusy(f"tenant {tenant} is being rotated by another run") from None
            raise DependencyUnavailable("storage", f"lease: {exc.status_code} {exc.reason}") from None
        except ServiceRequestError as exc:
            raise DependencyUnavailable("storage", f"lease: network error {exc.__class__.__name__}") from None
        lease = BlobLease(lease_client, tenant, self._seconds)
        outer = getattr(self._held, "lease", None)
        self._held.lease = lease
        try:
            yield lease
        finally:
            self._held.lease = outer
            lease.release()

    def check_current(self) -> None:
        lease = getattr(self._held, "lease", None)
        if lease is not None:
            lease.check()

    def break_all(self) -> None:
        """Operator tool: free every lease (after a crashed run, instead of waiting for expiry)."""
        self._ensure_container()
        for blob in self._container.list_blobs():
            with contextlib.suppress(HttpResponseError):
                BlobLeaseClient(self._container.get_blob_client(blob.name)).break_lease(lease_break_period=0)


class StorageRotationQueue:
    def __init__(self, storage: StorageSettings, name: str, *, credential: TokenCredential | None = None) -> None:
        # The Functions queue trigger expects base64 messages by default.
        policy = TextBase64EncodePolicy()
        transport = pooled_transport(dependency=DEPENDENCY)  # counted, as the blob clients are
        if storage.connection_string:
            self.client = QueueClient.from_connection_string(
                storage.connection_string, name, message_encode_policy=policy, transport=transport
            )
        else:
            self.client = QueueClient(
                storage.queue_service_uri,
                name,
                credential=credential,
                message_encode_policy=policy,
                transport=transport,
            )
        self._ready = False

    def send(self, request: RotationRequest, *, delay_seconds: float = 0.0) -> None:
        try:
            if not self._ready:
                with contextlib.suppress(ResourceExistsError):
                    self.client.create_queue()
                self._ready = True
            # Whole seconds (the queue's unit), rounded: a slot a few ms away starts now. At most
            # 7 days, the queue's own limit.
            delay = min(max(0, math.floor(delay_seconds + 0.5)), 7 * 24 * 3600)
            self.client.send_message(request.to_json(), visibility_timeout=delay or None)
        except (HttpResponseError, ServiceRequestError) as exc:
            raise DependencyUnavailable("storage", f"queue: {exc.__class__.__name__}") from None


class BlobGraphPace:
    """``GraphPace`` in one small JSON blob beside the leases, updated with ETag checks so that
    instances reserving at once each get their own slots. The name cannot be a tenant's lease blob
    ("_" never occurs in a tenant slug)."""

    BLOB = "_graph-pace"
    TRIES = 20

    def __init__(
        self, storage: StorageSettings, container: str, clock: Clock, *, credential: TokenCredential | None = None
    ) -> None:
        service = _blob_service(storage, credential)
        self._container = service.get_container_client(container)
        self._blob = self._container.get_blob_client(self.BLOB)
        self._clock = clock
        self._ready = False

    def _read(self) -> tuple[dict[str, float], str | None]:
        if not self._ready:
            with contextlib.suppress(ResourceExistsError):
                self._container.create_container()
            self._ready = True
        try:
            download = self._blob.download_blob()
            raw = download.readall()
            etag = download.properties.etag
        except ResourceNotFoundError:
            return {}, None
        try:
            state = json.loads(raw or b"{}")
        except ValueError:
            state = {}
        return {k: float(v) for k, v in state.items() if isinstance(v, (int, float))}, etag

    def _update(self, change: Callable[[dict[str, float], float], T]) -> T:
        for _ in range(self.TRIES):
            try:
                state, etag = self._read()
                result = change(state, self._clock.now().timestamp())
                data = json.dumps(state).encode()
                if etag is None:
                    self._blob.upload_blob(data, overwrite=False)
                else:
                    self._blob.upload_blob(
                        data, overwrite=True, etag=etag, match_condition=MatchConditions.IfNotModified
                    )
                return result
            except (ResourceExistsError, ResourceModifiedError):
                continue  # another instance wrote first: read again
            except (HttpResponseError, ServiceRequestError) as exc:
                raise DependencyUnavailable("storage", f"graph pace: {exc.__class__.__name__}") from None
        raise DependencyUnavailable("storage", "graph pace: too many concurrent updates")

    def reserve(self, count: int, interval: float) -> list[float]:
        def take(state: dict[str, float], now: float) -> list[float]:
            first = max(now, state.get("next_free", 0.0), state.get("paused_until", 0.0))
            slots = [first + i * interval for i in range(count)]
            state["next_free"] = first + count * interval
            return slots

        return self._update(take) if count > 0 else []

    def slow_down(self, seconds: float) -> float:
        def pause(state: dict[str, float], now: float) -> float:
            until = max(state.get("paused_until", 0.0), now + seconds)
            state["paused_until"] = until
            state["next_free"] = max(state.get("next_free", 0.0), until)
            return until

        return self._update(pause)

    def paused_until(self) -> float:
        try:
            return self._read()[0].get("paused_until", 0.0)
        except (HttpResponseError, ServiceRequestError) as exc:
            raise DependencyUnavailable("storage", f"graph pace: {exc.__class__.__name__}") from None
