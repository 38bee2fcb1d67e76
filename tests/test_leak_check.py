"""The no-secret-in-logs check itself: a test that logs a live secret, at any level and in any
phase, must fail the suite. Run in a pytest of its own (pytester) with this suite's conftest."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parent.parent

INNER = """
import logging
import pytest

log = logging.getLogger("planted")


@pytest.fixture
def leaks_in_setup(emulators):
    _, secret = emulators.world.graph.add_password_direct(emulators.world.identity.object_id, "x")
    log.debug("setup saw %s", secret)


def test_logs_a_secret_at_error(emulators):
    _, secret = emulators.world.graph.add_password_direct(emulators.world.identity.object_id, "x")
    log.error("oops: %s", secret)


def test_logs_a_secret_in_an_extra_field_at_debug(emulators):
    _, secret = emulators.world.graph.add_password_direct(emulators.world.identity.object_id, "x")
    log.debug("nothing to see", extra={"value": secret})


def test_logs_a_secret_while_setting_up(leaks_in_setup):
    pass


def test_logs_nothing_secret(emulators):
    log.error("a key id, a hint: abc…")
"""


@pytest.mark.timeout(300)
def test_the_leak_check_fails_a_test_that_logs_a_secret_in_any_phase_at_any_level(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makeconftest(
        "from tests.conftest import _all_logs, _no_secret_in_logs_or_alerts, alerts  # noqa: F401\n"
        "pytest_plugins = ['emulators.testing']\n"
    )
    pytester.makepyfile(test_inner=INNER)

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")

    # The bodies pass; the check then fails the teardown of exactly the three that leaked.
    assert result.parseoutcomes() == {"passed": 4, "errors": 3}, result.stdout.str()[-3000:]
    errored = {m.group(1) for m in re.finditer(r"^ERROR \S*::(test_\w+)", result.stdout.str(), re.M)}
    assert errored == {
        "test_logs_a_secret_at_error",
        "test_logs_a_secret_in_an_extra_field_at_debug",
        "test_logs_a_secret_while_setting_up",
    }, result.stdout.str()[-3000:]
    assert "leaked into logs or alerts" in result.stdout.str()
