"""Fixtures shared by every test: the emulators (HTTPS, real SDK clients), Azurite, and the
service wired to both exactly as in production except for settings."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from clients.factory import Services, use_services
from devenv.azurite import Azurite, start_azurite
from devenv.wiring import RecordingNotifier, local_env, local_services
from emulators import Emulators

pytest_plugins = ["emulators.testing"]


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    with start_azurite() as running:
        yield running


@pytest.fixture
def alerts() -> RecordingNotifier:
    return RecordingNotifier()


@pytest.fixture
def env(emulators: Emulators, azurite: Azurite) -> dict[str, str]:
    return local_env(emulators, azurite.connection_string)


@pytest.fixture
def svc(emulators: Emulators, env: dict[str, str], alerts: RecordingNotifier) -> Iterator[Services]:
    """The service as the function triggers see it (``clients.factory.services()``)."""
    services = local_services(emulators, env, alerts)
    use_services(services)
    try:
        yield services
    finally:
        use_services(None)
        services.graph.close()


@pytest.fixture(autouse=True)
def _all_logs(caplog: pytest.LogCaptureFixture) -> None:
    # Capture everything so the no-secret-in-logs checks see debug records too.
    caplog.set_level(logging.DEBUG)


@pytest.fixture(autouse=True)
def _no_secret_in_logs_or_alerts(request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """A secret value never appears in a log record or an alert: checked after every test that ran
    against the emulators, over everything the test logged at any level."""
    if "emulators" not in request.fixturenames:
        yield
        return
    # Resolved now so that it is torn down after this check, not before.
    emulators: Emulators = request.getfixturevalue("emulators")
    alerts = request.getfixturevalue("alerts") if "alerts" in request.fixturenames else None
    yield
    secrets = emulators.world.secret_values()
    texts = [r.getMessage() + " " + str(r.__dict__) for r in caplog.records]
    texts += [r.exc_text or "" for r in caplog.records]
    if alerts is not None:
        texts += [repr(a) + str(a.details) for a in alerts.alerts]
    leaked = [s[:3] + "…" for s in secrets if any(s in t for t in texts)]
    assert not leaked, f"secret values (hints shown) leaked into logs or alerts: {leaked}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the size of the fault matrix, as the rotation issue asks, whenever it ran."""
    from tests import test_rotation_fault_matrix as matrix

    if matrix.RESULTS:
        terminalreporter.write_line(matrix.summary())
