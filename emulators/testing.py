"""pytest plugin: ``emulators`` fixture (one server set per session, a fresh World per test).

Register it from tests/conftest.py::

    pytest_plugins = ["emulators.testing"]

Then::

    def test_something(emulators):
        emulators.world.nylas.add_v3_app("app-1", "key-1")
        settings = Settings.from_env(emulators.env())

Fixtures:
  * ``emulators_session`` – session scoped, started once (free ports, no delays).
  * ``emulators`` – function scoped; the same servers after ``world.reset()`` (apps, secrets,
    Nylas apps, faults, calls, clock offset and delays cleared; the service identity kept).
  * ``emulators_env`` – function scoped; ``emulators.env()`` applied to os.environ via monkeypatch.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .server import Emulators


@pytest.fixture(scope="session")
def emulators_session() -> Iterator[Emulators]:
    emu = Emulators.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def emulators(emulators_session: Emulators) -> Iterator[Emulators]:
    emulators_session.world.reset()
    yield emulators_session
    # Leave no fault armed for whatever runs next (even outside this fixture).
    emulators_session.world.faults.clear()
    emulators_session.world.latency_all(0)


@pytest.fixture
def emulators_env(emulators: Emulators, monkeypatch: pytest.MonkeyPatch) -> Emulators:
    for name, value in emulators.env().items():
        monkeypatch.setenv(name, value)
    return emulators
