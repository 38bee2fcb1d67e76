"""The proof: every outside call of a rotation, for every Nylas target, under every fault kind.

For each call a clean rotation makes (found by running one and reading the emulators' call
log and our seams; the harness itself reads the emulated world directly, so every call in the
log is the service's), and each fault kind — our process crashing just before or just after
the call, HTTP 500, 503, 429 with Retry-After, 400, 401, 403, 404, a dropped connection, and on
every write the answer lost after the write was applied — the cell:
  1. provisions a tenant (with a foreign credential beside ours) and moves it into its window;
  2. runs the rotation with the fault armed for that call, and checks the invariants that
     hold at every instant;
  3. disarms the fault, runs again until the rotation settles, and checks all six;
  4. fails if its fault never fired inside the service (a vacuous cell proves nothing).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

from bootstrap import Services
from core.errors import ServiceError
from devenv.oracle import LOOKALIKE, recorded
from devenv.scenario import (
    TARGETS,
    Tenant,
    add_foreign_credential,
    check_anytime,
    check_settled,
    mark_baseline,
    provision,
    settle,
    sign_in_user,
)
from emulators import Emulators

INTO_WINDOW_DAYS = 710
HTTP_FAULTS = ("500", "503", "429", "400", "401", "403", "404", "drop")
LOST = "lost"  # the write is applied, then its answer is lost (the connection drops)
CRASHES = ("crash-before", "crash-after")
WRITE_WORDS = ("set_", "update_", "add_", "remove_", "create_", "patch_", "upsert_", "delete_")
PERSISTENT = 50  # longer than any client's own retries: the run must fail at this call
SEAMS = ("graph", "vault", "verifier", "nylas")
RESULTS: dict[str, tuple[int, list[str]]] = {}  # target -> (cells, failures); printed at the end of the run


class SimulatedCrash(BaseException):
    """The process dies here. BaseException, so no `except Exception` in the service can swallow it."""


class CrashAt:
    """A seam wrapper: dies just before or just after the n-th call of one method."""

    def __init__(self, real: Any, method: str, nth: int, when: str) -> None:
        self._real, self._method, self._left, self._when = real, method, nth, when
        self.fired = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        if name != self._method or not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self._left -= 1
            if self._left == 0 and self._when == "crash-before":
                self.fired = True
                raise SimulatedCrash(f"before {name}")
            result = attr(*args, **kwargs)
            if self._left == 0 and self._when == "crash-after":
                self.fired = True
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
        add_foreign_credential(emulators, tenant, LOOKALIKE)
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
        kinds = HTTP_FAULTS + ((LOST,) if is_write(route) else ())
        cells += [Cell(kind, route, seen[route]) for kind in kinds]
    seen.clear()
    for seam, method in seam_log:
        where = f"{seam}.{method}"
        seen[where] += 1
        cells += [Cell(kind, where, seen[where]) for kind in CRASHES]
    return cells


def is_write(route: str) -> bool:
    return any(word in route.split(".", 1)[1] for word in WRITE_WORDS)


def arm(svc: Services, emulators: Emulators, cell: Cell) -> dict[str, Any]:
    """Arm the fault; returns seams to restore (a crash wrapper sits in the seam's place)."""
    if cell.kind in CRASHES:
        seam, method = cell.where.split(".", 1)
        real = getattr(svc.deps, seam)
        setattr(svc.deps, seam, CrashAt(real, method, cell.nth, cell.kind))
        return {seam: real}
    faults = emulators.world.faults
    skip = cell.nth - 1
    if cell.kind == LOST:
        faults.inject(cell.where, drop=True, phase="after", times=1, skip=skip)
    elif cell.kind == "drop":
        faults.inject(cell.where, drop=True, times=PERSISTENT, skip=skip)
    elif cell.kind == "429":
        faults.inject(cell.where, status=429, retry_after=1, times=PERSISTENT, skip=skip)
    else:
        faults.inject(cell.where, status=int(cell.kind), times=PERSISTENT, skip=skip)
    return {}


def fired(emulators: Emulators, cell: Cell, restore: dict[str, Any], svc: Services) -> bool:
    """Whether the cell's fault happened inside the service's run (read before it is disarmed)."""
    if cell.kind in CRASHES:
        seam = cell.where.split(".", 1)[0]
        return bool(getattr(svc.deps, seam).fired)
    armed = [f for f in emulators.world.faults.pending() if f.route == cell.where]
    if cell.kind == LOST:
        return not armed  # its one time was taken
    return bool(armed) and armed[0].times < PERSISTENT and armed[0].skip == 0


def run_cell(svc: Services, emulators: Emulators, target: str, cell: Cell) -> list[str]:
    tenant = fresh_tenant(svc, emulators, target)
    restore = arm(svc, emulators, cell)
    try:
        settle(svc, emulators, tenant, max_runs=1)
    except (SimulatedCrash, ServiceError):
        pass  # the faulted run may fail; what matters is what it leaves behind
    finally:
        happened = fired(emulators, cell, restore, svc)
        for seam, real in restore.items():
            setattr(svc.deps, seam, real)
        emulators.world.faults.clear()
    if not happened:
        return ["vacuous: the fault never fired inside the service"]
    broken = [f"during: {b}" for b in check_anytime(svc, emulators, tenant)]
    settle(svc, emulators, tenant)
    broken += check_settled(svc, emulators, tenant)
    latest = recorded(emulators, tenant)
    if latest is None or latest.key_id in tenant.baseline:
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


def summary(retirements: dict[str, tuple[int, int]] | None = None) -> str:
    """One line: cells per target for rotations, then for retirements ((cells, failed) each)."""
    everything = {f"rotation {t}": (n, len(f)) for t, (n, f) in RESULTS.items()}
    everything |= {f"retirement {t}": counts for t, counts in (retirements or {}).items()}
    total = sum(n for n, _ in everything.values())
    failed = sum(f for _, f in everything.values())
    parts = ", ".join(f"{k}: {n}" for k, (n, _) in everything.items())
    return f"fault matrix: {total} cells ({parts}), {total - failed} passed, {failed} failed"
