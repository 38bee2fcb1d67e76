"""Fixtures shared by every test: the emulators (HTTPS, real SDK clients), Azurite, and the
service wired to both exactly as in production except for settings."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from bootstrap import Services, use_services
from core.telemetry import install_log_context
from devenv.azurite import Azurite, start_azurite
from devenv.wiring import RecordingNotifier, local_env, local_services
from emulators import Emulators

pytest_plugins = ["emulators.testing"]


def pytest_configure(config: pytest.Config) -> None:
    # As in Azure (function_app.py) and the CLI: every record names its tenant. Installed once, for
    # every test, so no test's result depends on which ran first.
    install_log_context()


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
    """The service as the function triggers see it (``bootstrap.services()``)."""
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


def leaked(secrets: set[str], records: list[logging.LogRecord], extra_texts: list[str]) -> list[str]:
    """Hints of the secret values that appear in any of these log records (message, arguments,
    ``extra=`` fields, exception text) or texts."""
    texts = [r.getMessage() + " " + str(r.__dict__) for r in records]
    texts += [r.exc_text or "" for r in records]
    texts += extra_texts
    return [s[:3] + "…" for s in secrets if any(s in t for t in texts)]


@pytest.fixture(autouse=True)
def _no_secret_in_logs_or_alerts(request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """A secret value never appears in a log record or an alert: checked after every test that ran
    against the emulators, over everything logged at any level in every phase (setup, the test body
    and teardown: pytest keeps each phase's records apart, so all three are read)."""
    if "emulators" not in request.fixturenames:
        yield
        return
    # Resolved now so that it is torn down after this check, not before.
    emulators: Emulators = request.getfixturevalue("emulators")
    alerts = request.getfixturevalue("alerts") if "alerts" in request.fixturenames else None
    yield
    records = [r for when in ("setup", "call", "teardown") for r in caplog.get_records(when)]
    texts = [repr(a) + str(a.details) for a in alerts.alerts] if alerts is not None else []
    found = leaked(emulators.world.secret_values(), records, texts)
    assert not found, f"secret values (hints shown) leaked into logs or alerts: {found}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the size of the fault matrix (rotations and retirements), whenever it ran."""
    from tests import test_retire as retire
    from tests import test_rotation_fault_matrix as matrix

    if matrix.RESULTS or retire.RETIREMENT_CELLS:
        terminalreporter.write_line(matrix.summary(dict(retire.RETIREMENT_CELLS)))
