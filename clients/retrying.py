"""Retries for calls made with ``requests`` (Nylas, alert webhooks).

The Azure SDKs retry by themselves; requests does not. Honour the server's word on
when to come back (Retry-After, or Nylas v2's X-RateLimit-Reset), retry 429, 5xx and
network errors a few times, and never 400/401/403/404: those will not get better.
"""

from __future__ import annotations

from collections.abc import Callable

import requests

from core.clock import Sleep, real_sleep

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
