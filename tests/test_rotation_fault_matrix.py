"""The proof: every outside call of a rotation, for every Nylas target, under every fault kind.

For each call a clean rotation makes (found by running one and reading the emulators' call
log and our seams), and each fault kind — our process crashing just before or just after the
call, HTTP 500, 503, 429 with Retry-After, a dropped connection, and for Graph reads a
replication 404 — the cell:
  1. provisions a tenant (with a foreign credential beside ours) and moves it into its window;
  2. runs the rotation with the fault armed for that call, and checks the invariants that
     hold at every instant;
  3. disarms the fault, runs again until the rotation settles, and checks all five.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

from clients.factory import Services
from core.errors import ServiceError
from devenv.scenario import (
    TARGETS,
    Tenant,
    add_foreign_credential,
    check_anytime,
    check_settled,
    mark_baseline,
    provision,
    record,
    settle,
    sign_in_user,
)
from emulators import Emulators

INTO_WINDOW_DAYS = 710
HTTP_FAULTS = ("500", "503", "429", "drop")
CRASHES = ("crash-before", "crash-after")
GRAPH_READS = ("graph.get_application",)
SEAMS = ("graph", "vault", "verifier", "nylas")
RESULTS: dict[str, tuple[int, list[str]]] = {}  # target -> (cells, failures); printed at the end of the run


class SimulatedCrash(BaseException):
    """The process dies here. BaseException, so no `except Exception` in the service can swallow it."""


class CrashAt:
    """A seam wrapper: dies just before or just after the n-th call of one method."""

    def __init__(self, real: Any, method: str, nth: int, when: str) -> None:
        self._real, self._method, self._left, self._when = real, method, nth, when

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        if name != self._method or not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self._left -= 1
            if self._left == 0 and self._when == "crash-before":
                raise SimulatedCrash(f"before {name}")
            result = attr(*args, **kwargs)
            if self._left == 0 and self._when == "crash-after":
                raise SimulatedCrash(f"after {name}")
            return result

        return call


class Recorder:
    """A seam wrapper that lists the calls made through it."""

    def __init__(self, real: Any, seam: str, log: list[tuple[str, str]]) -> None:
        self._real, self._seam, self._log = real, seam, log

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        if not callable(attr) or name.startswith("_"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self._log.append((self._seam, name))
            return attr(*args, **kwargs)

        return call


@dataclass(frozen=True)
class Cell:
    kind: str
    where: str  # a route id, or seam.method
    nth: int  # 1-based occurrence of that call within the rotation

    def __str__(self) -> str:
        return f"{self.kind} @ {self.where} #{self.nth}"


def fresh_tenant(svc: Services, emulators: Emulators, target: str) -> Tenant:
    emulators.world.reset()
    # v3-credential keeps v3's default audience (personal accounts too: two secrets at most, so no
    # room for a foreign one); v3-connector signs in work accounts only and keeps a foreign secret.
    extra = {"audience": "multi-org"} if target == "v3-connector" else {}
    tenant = provision(svc, emulators, "matrix", target, **extra)
    if tenant.v3:  # invariant 6: this user must keep refreshing through every fault
        sign_in_user(emulators, tenant, "ada@outlook.com" if target == "v3-credential" else "ada@contoso.example")
    if target != "v3-credential":
        add_foreign_credential(emulators, tenant, "made by hand")
    emulators.world.clock.advance(days=INTO_WINDOW_DAYS)
    mark_baseline(emulators, tenant)
    emulators.world.reset_calls()
    return tenant


def enumerate_cells(svc: Services, emulators: Emulators, target: str) -> list[Cell]:
    tenant = fresh_tenant(svc, emulators, target)
    seam_log: list[tuple[str, str]] = []
    real = {name: getattr(svc.deps, name) for name in SEAMS}
    for name in SEAMS:
        setattr(svc.deps, name, Recorder(real[name], name, seam_log))
    try:
        settle(svc, emulators, tenant)
    finally:
        for name in SEAMS:
            setattr(svc.deps, name, real[name])
    assert check_settled(svc, emulators, tenant) == []

    cells: list[Cell] = []
    seen: Counter[str] = Counter()
    for route, _method, _path, _status in list(emulators.world.call_log):
        if route.startswith("control.") or route == "keyvault.challenge":
            continue
        seen[route] += 1
        kinds = HTTP_FAULTS + (("404",) if route in GRAPH_READS else ())
        cells += [Cell(kind, route, seen[route]) for kind in kinds]
    seen.clear()
    for seam, method in seam_log:
        where = f"{seam}.{method}"
        seen[where] += 1
        cells += [Cell(kind, where, seen[where]) for kind in CRASHES]
    return cells


def arm(svc: Services, emulators: Emulators, cell: Cell) -> dict[str, Any]:
    """Arm the fault; returns seams to restore."""
    if cell.kind in CRASHES:
        seam, method = cell.where.split(".", 1)
        real = getattr(svc.deps, seam)
        setattr(svc.deps, seam, CrashAt(real, method, cell.nth, cell.kind))
        return {seam: real}
    faults = emulators.world.faults
    persistent = 50  # longer than any client's own retries: the run must fail at this call
    skip = cell.nth - 1
    if cell.kind == "drop":
        faults.inject(cell.where, drop=True, times=persistent, skip=skip)
    elif cell.kind == "429":
        faults.inject(cell.where, status=429, retry_after=1, times=persistent, skip=skip)
    elif cell.kind == "404":
        faults.inject(cell.where, status=404, error_code="Request_ResourceNotFound", times=persistent, skip=skip)
    else:
        faults.inject(cell.where, status=int(cell.kind), times=persistent, skip=skip)
    return {}


def run_cell(svc: Services, emulators: Emulators, target: str, cell: Cell) -> list[str]:
    tenant = fresh_tenant(svc, emulators, target)
    restore = arm(svc, emulators, cell)
    try:
        settle(svc, emulators, tenant, max_runs=1)
    except (SimulatedCrash, ServiceError):
        pass  # the faulted run may fail; what matters is what it leaves behind
    finally:
        for seam, real in restore.items():
            setattr(svc.deps, seam, real)
        emulators.world.faults.clear()
    broken = [f"during: {b}" for b in check_anytime(svc, emulators, tenant)]
    settle(svc, emulators, tenant)
    broken += check_settled(svc, emulators, tenant)
    if record(svc, tenant)[1].key_id in tenant.baseline:
        broken.append("4: the rotation never happened after the fault was gone")
    return broken


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_rotation_settles_correctly_after_any_fault_at_any_outside_call(svc, emulators, target):
    cells = enumerate_cells(svc, emulators, target)
    failures = []
    for cell in cells:
        broken = run_cell(svc, emulators, target, cell)
        if broken:
            failures.append(f"{cell}: {'; '.join(broken)}")
    RESULTS[target] = (len(cells), failures)
    assert not failures, f"{len(failures)} of {len(cells)} cells broke an invariant:\n" + "\n".join(failures)


def summary() -> str:
    total = sum(n for n, _ in RESULTS.values())
    failed = sum(len(f) for _, f in RESULTS.values())
    parts = ", ".join(f"{t}: {n}" for t, (n, _) in RESULTS.items())
    return f"fault matrix: {total} cells ({parts}), {total - failed} passed, {failed} failed"
