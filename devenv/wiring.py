"""Wire the real service to the local emulators: settings from the emulators and Azurite,
the engine's clock and sleep from the emulated world (so waiting costs no real time)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from bootstrap import Services, build_services
from core.ports import Alert, Notifier
from core.settings import Settings

if TYPE_CHECKING:
    from emulators import Emulators


class WorldClock:
    def __init__(self, emulators: Emulators) -> None:
        self._clock = emulators.world.clock

    def now(self) -> datetime:
        return self._clock.now()

    def sleep(self, seconds: float) -> None:
        self._clock.advance(seconds=seconds)


class RecordingNotifier:
    """Keeps every alert for inspection, and passes it on if asked."""

    def __init__(self, then: Notifier | None = None) -> None:
        self.alerts: list[Alert] = []
        self._then = then

    def notify(self, alert: Alert) -> None:
        self.alerts.append(alert)
        if self._then is not None:
            self._then.notify(alert)

    def kinds(self) -> list[str]:
        return [a.kind for a in self.alerts]


def local_env(emulators: Emulators, storage_connection: str, **overrides: str) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    env = {
        **emulators.env(),
        "AzureWebJobsStorage": storage_connection,
        "ROTATION_QUEUE": f"rotation-requests-{suffix}",
        "LEASE_CONTAINER": f"rotation-leases-{suffix}",
        "LEASE_SECONDS": "15",
        "VERIFY_BUDGET_SECONDS": "120",
        "HTTP_MAX_RETRIES": "2",
        # Retries still happen (and Retry-After is still honoured); only the base backoff is short.
        "HTTP_RETRY_BASE_SECONDS": "0.05",
        # Callers are not signed in here unless a test asks (tests/test_caller_auth.py passes
        # CALLER_AUTH=entra and the emulated API's audience): the handlers run as with function keys.
        "CALLER_AUTH": "function-key",
    }
    env.update(overrides)
    return env


def local_services(emulators: Emulators, env: Mapping[str, str], notifier: Notifier | None = None) -> Services:
    clock = WorldClock(emulators)
    return build_services(Settings.from_env(env), clock=clock, sleep=clock.sleep, notifier=notifier)
