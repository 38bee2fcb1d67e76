"""Azure Key Vault secrets, behind the ``SecretStore`` seam: the service's only database.

Every secret version written (``set``) or re-tagged (``update_tags``) while a caller is set
(core/audit.py) gets the tag ``requested-by`` naming who asked, within Key Vault's 15 tags.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TypeVar

from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.keyvault.secrets import SecretClient, SecretProperties

from clients.retrying import pooled_transport
from core.audit import REQUESTED_BY_TAG, current_caller, stamp
from core.errors import DependencyError, DependencyRejected, DependencyUnavailable
from core.ports import SecretVersion

DEPENDENCY = "key-vault"
log = logging.getLogger("clients.keyvault")
T = TypeVar("T")
PAGE_SIZE = 25  # Key Vault's maximum: a scan of N secrets costs ceil(N/25) calls


class KeyVaultStore:
    def __init__(
        self,
        vault_url: str,
        credential: TokenCredential,
        *,
        ca_bundle: str = "",
        verify_challenge_resource: bool = True,
        timeout: float = 30.0,
        max_retries: int = 3,
        retry_base_seconds: float = 1.0,
    ) -> None:
        options: dict[str, object] = {
            "verify_challenge_resource": verify_challenge_resource,
            "retry_total": max_retries,
            "retry_backoff_factor": retry_base_seconds,
            "connection_timeout": timeout,
            "read_timeout": timeout,
        }
        if ca_bundle:
            options["connection_verify"] = ca_bundle
        options["transport"] = pooled_transport(ca_bundle=ca_bundle, timeout=timeout, dependency="key-vault")
        self.client = SecretClient(vault_url, credential, **options)

    def get(self, name: str, version: str | None = None) -> SecretVersion | None:
        try:
            secret = _call(lambda: self.client.get_secret(name, version))
        except DependencyRejected as exc:
            if exc.status == 404:
                return None
            raise
        return _version(secret.properties, secret.value)

    def set(
        self, name: str, value: str, *, tags: dict[str, str], expires_on: datetime | None, content_type: str
    ) -> SecretVersion:
        tags = _stamped(name, tags)
        secret = _call(
            lambda: self.client.set_secret(
                name, value, tags=tags, expires_on=expires_on, content_type=content_type, enabled=True
            )
        )
        return _version(secret.properties, value)

    def update_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        tags = _stamped(name, tags)
        _call(lambda: self.client.update_secret_properties(name, version, tags=tags))

    def list_properties(self) -> Iterator[SecretVersion]:
        pages = self.client.list_properties_of_secrets(max_page_size=PAGE_SIZE).by_page()
        while True:
            try:
                page = _call(lambda: list(next(pages)))
            except StopIteration:
                return
            yield from (_version(p, None) for p in page)

    def delete(self, name: str) -> bool:
        """Soft-delete (the vault keeps it for its retention days, recoverable). False: already gone."""
        try:
            # The poller waits for the deletion to finish; its first answer already made it so.
            _call(lambda: self.client.begin_delete_secret(name))
        except DependencyRejected as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def is_deleted(self, name: str) -> bool:
        """Whether a soft-deleted secret of this name is in the vault's deleted items."""
        try:
            _call(lambda: self.client.get_deleted_secret(name))
        except DependencyRejected as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def list_versions(self, name: str) -> list[SecretVersion]:
        return _call(
            lambda: [
                _version(p, None) for p in self.client.list_properties_of_secret_versions(name, max_page_size=PAGE_SIZE)
            ]
        )


def _stamped(name: str, tags: dict[str, str]) -> dict[str, str]:
    """The tags with ``requested-by`` naming the current caller (core.audit), when one is set."""
    out, recorded = stamp(tags)
    if not recorded:
        log.warning(
            "requested-by not recorded: the secret version already holds Key Vault's 15 tags",
            extra={"secret": name, "tag": REQUESTED_BY_TAG, "caller": current_caller()},
        )
    return out


def _call(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except ClientAuthenticationError as exc:
        if exc.status_code is None:  # our own token request failed, not Key Vault's answer
            raise service_token_error(exc) from None
        raise DependencyRejected(DEPENDENCY, _summary(exc), status=exc.status_code, error_code=_code(exc)) from None
    except ResourceNotFoundError as exc:
        raise DependencyRejected(DEPENDENCY, _summary(exc), status=404, error_code=_code(exc)) from None
    except HttpResponseError as exc:
        status = exc.status_code or 0
        if status == 429 or status >= 500:
            raise DependencyUnavailable(DEPENDENCY, _summary(exc), status=status, error_code=_code(exc)) from None
        raise DependencyRejected(DEPENDENCY, _summary(exc), status=status, error_code=_code(exc)) from None
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise DependencyUnavailable(DEPENDENCY, f"network error: {exc.__class__.__name__}") from None


def _code(exc: HttpResponseError) -> str:
    return (exc.error.code if exc.error else None) or ""


def _summary(exc: HttpResponseError) -> str:
    # Key Vault's error messages name the secret, never its value.
    message = exc.error.message if exc.error else exc.reason
    return f"{exc.status_code} {_code(exc)}: {message}"[:300]


def _version(props: SecretProperties, value: str | None) -> SecretVersion:
    return SecretVersion(
        name=props.name or "",
        version=props.version or "",
        tags=dict(props.tags or {}),
        expires_on=props.expires_on,
        enabled=bool(props.enabled),
        created_on=props.created_on,
        updated_on=props.updated_on,
        id=props.id or "",
        value=value,
    )


def service_token_error(exc: ClientAuthenticationError) -> DependencyError:
    """The service's own identity could not get a token: Entra down (transient) or misconfigured."""
    text = str(exc).splitlines()[0][:200] if str(exc) else exc.__class__.__name__
    transient = any(m in text for m in ("HTTP Error: 5", "HTTP Error: 429", "connection", "timed out", "Timeout"))
    message = f"the service's identity could not get a token: {text}"
    if transient:
        return DependencyUnavailable("entra-id", message)
    return DependencyRejected("entra-id", message)
