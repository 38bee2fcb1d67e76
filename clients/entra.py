"""Does a client secret work? Ask Entra for a client-credentials token, the way Nylas will."""

from __future__ import annotations

import re

from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError, ServiceResponseError
from azure.identity import ClientSecretCredential

from clients.retrying import pooled_transport
from core.errors import DependencyUnavailable
from core.ports import VerifyOutcome, VerifyResult

DEPENDENCY = "entra-id"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
_AADSTS = re.compile(r"AADSTS\d+")
_OUTCOMES = {
    "AADSTS7000215": VerifyOutcome.REJECTED,  # wrong secret, or not yet propagated
    "AADSTS7000222": VerifyOutcome.EXPIRED,
    "AADSTS700016": VerifyOutcome.UNKNOWN_CLIENT,  # app not replicated yet, or deleted
    "AADSTS7000229": VerifyOutcome.NO_SERVICE_PRINCIPAL,  # the app has no service principal here (T4)
}


class EntraVerifier:
    def __init__(
        self,
        tenant_id: str,
        *,
        authority_host: str,
        ca_bundle: str = "",
        timeout: float = 30.0,
        instance_discovery: bool = True,
        max_retries: int = 3,
        retry_base_seconds: float = 1.0,
    ) -> None:
        self._retry = {"retry_total": max_retries, "retry_backoff_factor": retry_base_seconds}
        # One pooled transport for every check: a new credential per check (so no cached token
        # proves anything), but not a new TLS connection per check.
        self._transport = pooled_transport(ca_bundle=ca_bundle, timeout=timeout, dependency="entra-id")
        self.tenant_id = tenant_id
        self._instance_discovery = instance_discovery
        self._authority = authority_host
        self._ca_bundle = ca_bundle
        self._timeout = timeout

    def verify(self, client_id: str, client_secret: str) -> VerifyResult:
        options: dict[str, object] = {
            "authority": self._authority,
            "connection_timeout": self._timeout,
            "transport": self._transport,
            **self._retry,
        }
        if not self._instance_discovery:
            options["disable_instance_discovery"] = True
        if self._ca_bundle:
            options["connection_verify"] = self._ca_bundle
        # A new credential per check: a cached token would prove nothing about this secret.
        credential = ClientSecretCredential(self.tenant_id, client_id, client_secret, **options)
        try:
            credential.get_token(GRAPH_SCOPE)
            return VerifyResult(VerifyOutcome.ACCEPTED)
        except ClientAuthenticationError as exc:
            # The message holds Entra's error_description (codes, trace ids), never the secret we sent.
            found = _AADSTS.search(str(exc))
            code = found.group(0) if found else ""
            if code not in _OUTCOMES:
                # No verdict on this secret (a 5xx, a 429, throttling, a dropped connection): Entra
                # said nothing about it. Counting that as a rejection would roll back a good rotation.
                raise DependencyUnavailable(
                    DEPENDENCY, f"token endpoint gave no verdict on the secret ({code or 'unavailable'})"
                ) from None
            return VerifyResult(_OUTCOMES[code], code)
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise DependencyUnavailable(DEPENDENCY, f"network error: {exc.__class__.__name__}") from None
        finally:
            credential.close()
