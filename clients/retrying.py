"""Retries for calls made with ``requests`` (Nylas, alert webhooks).

The Azure SDKs retry by themselves; requests does not. Honour the server's word on
when to come back (Retry-After, or Nylas v2's X-RateLimit-Reset), retry 429, 5xx and
network errors a few times, and never 400/401/403/404: those will not get better.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests

from core.clock import Sleep, real_sleep
from core.telemetry import count_call

RETRYABLE = {429, 500, 502, 503, 504}
MAX_WAIT = 60.0


def wait_from_headers(response: requests.Response) -> float | None:
    for header in ("Retry-After", "X-RateLimit-Reset"):
        raw = response.headers.get(header)
        if raw:
            try:
                return min(max(float(raw), 0.0), MAX_WAIT)
            except ValueError:
                continue
    return None


def send_with_retries(
    send: Callable[[], requests.Response], *, max_retries: int, sleep: Sleep = real_sleep
) -> requests.Response:
    """The final response (possibly an error status), or the last network error raised."""
    delay = 0.5
    for attempt in range(max_retries + 1):
        last_attempt = attempt == max_retries
        try:
            response = send()
        except (requests.ConnectionError, requests.Timeout):
            if last_attempt:
                raise
            sleep(delay)
            delay *= 2
            continue
        if response.status_code not in RETRYABLE or last_attempt:
            return response
        sleep(wait_from_headers(response) or delay)
        delay *= 2
    raise AssertionError("unreachable")


def http_session(pool_size: int = 64, *, dependency: str = "") -> requests.Session:
    """A requests session for many threads and many calls. requests reads the proxy variables
    from the whole environment on every request (about 4 ms of CPU per rotation, measured in
    docs/benchmarks.md); read them once here instead, and pool enough connections that
    concurrent calls do not each pay a TLS handshake. With a ``dependency`` name, every answer
    (each try, retries included) is counted by status (core.telemetry ``rotator.dependency.calls``)."""
    from urllib.request import getproxies

    from requests.adapters import HTTPAdapter

    session = requests.Session()
    session.trust_env = False
    session.proxies.update({k: v for k, v in getproxies().items() if k in ("http", "https", "no")})
    session.mount("https://", HTTPAdapter(pool_connections=8, pool_maxsize=pool_size))
    if dependency:

        def count(response: requests.Response, *args: Any, **kwargs: Any) -> None:
            count_call(dependency, response.status_code)

        session.hooks["response"].append(count)
    return session


def default_verify(ca_bundle: str) -> str | bool:
    """What to trust: the CA_BUNDLE setting, else the bundle the environment names (as requests
    would, had it been allowed to read the environment), else the default store."""
    import os

    return ca_bundle or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True


def pooled_transport(*, pool_size: int = 64, ca_bundle: str = "", timeout: float = 30.0, dependency: str = "") -> Any:
    """An azure-core transport over one pooled requests session, for SDK clients used from many
    threads at once: the default pool keeps 10 connections per host, so at higher concurrency
    every extra request paid a fresh TLS handshake (see docs/benchmarks.md)."""
    from azure.core.pipeline.transport import RequestsTransport

    options: dict[str, Any] = {
        "connection_timeout": timeout,
        "read_timeout": timeout,
        "connection_verify": default_verify(ca_bundle),
    }
    return RequestsTransport(session=http_session(pool_size, dependency=dependency), session_owner=False, **options)
