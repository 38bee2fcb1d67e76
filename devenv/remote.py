"""The emulators in a process of their own, steered through their HTTPS control API.

Benchmarks use it so that the process they measure holds only the service (its memory, its
threads), and crash tests so that killing the service never takes the emulators down.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent


class RemoteEmulators:
    def __init__(self, *, timeout: float = 30.0) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="emulators-")
        env_file = Path(self._dir.name) / "emulators.env"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "emulators", "--env-file", str(env_file)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while not env_file.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise RuntimeError(f"emulators did not start: {err[-400:]}")
            time.sleep(0.05)
        self._env: dict[str, str] = {}
        self.control_url = ""
        for line in env_file.read_text(encoding="utf-8").splitlines():
            if line.startswith("# control="):
                self.control_url = line.split("=", 1)[1]
            elif "=" in line and not line.startswith("#"):
                name, value = line.split("=", 1)
                self._env[name] = value
        self._session = requests.Session()
        self.offset = timedelta(0)

    def env(self) -> dict[str, str]:
        return dict(self._env)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        # verify per request: a session-level value loses to REQUESTS_CA_BUNDLE from the environment.
        response = self._session.request(
            method, f"{self.control_url}{path}", json=body, timeout=30, verify=self._env["CA_BUNDLE"]
        )
        response.raise_for_status()
        return response.json() if response.content else None

    def advance(self, *, days: float = 0, seconds: float = 0) -> None:
        self._call("POST", "/clock", {"advance_days": days, "advance_seconds": seconds})
        self.offset += timedelta(days=days, seconds=seconds)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def sleep(self, seconds: float) -> None:
        self.advance(seconds=seconds)

    def latency(self, seconds: float) -> None:
        self._call("POST", "/latency", {"seconds": seconds})

    def calls(self) -> dict[str, int]:
        return dict(self._call("GET", "/calls")["calls"])

    def reset_calls(self) -> None:
        self._call("POST", "/calls/reset")

    def fault(self, route: str, **kwargs: Any) -> None:
        self._call("POST", "/faults", {"route": route, **kwargs})

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def add_nylas_app(self, version: str, app_id: str, credential: str, region: str = "us") -> None:
        if version == "v3":
            body = {"version": "v3", "app_id": app_id, "api_key": credential, "region": region}
        else:
            body = {"version": "v2", "client_id": app_id, "client_secret": credential, "region": region}
        self._call("POST", "/nylas/apps", body)

    def nylas_state(self, app_id: str) -> dict[str, Any]:
        state: dict[str, Any] = self._call("GET", f"/nylas/apps/{app_id}")
        return state

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._dir.cleanup()

    def __enter__(self) -> RemoteEmulators:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
