"""Fencing: no write to Graph, Key Vault or Nylas by a run that has lost its tenant's lease.

A run holds its tenant's blob lease (``LeaseManager.hold``) for as long as it works on the
tenant. Should the lease be lost (a renewal failed, the blob's lease was broken, the process
stalled past LEASE_SECONDS), another run may already hold it; two writers on one tenant could
then undo each other. So every write method of the three seams first asks the lease manager
whether the lease this thread holds is still ours (``check_current``: one renewal, a storage
call), and a run that lost it stops with ``LeaseLost`` before the write. Reads are not fenced.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# The write methods of each seam (core.ports): everything else only reads.
WRITES = {
    # Branding (update_profile, put_logo) is written under the tenant's lease; the verified publisher is
    # an operator's own action on one property nothing else writes, made without a lease.
    "graph": frozenset(
        {"upsert", "update", "ensure_service_principal", "add_password", "remove_password", "delete"}
        | {"update_profile", "put_logo"}
    ),
    "vault": frozenset({"set", "update_tags", "delete"}),
    "nylas": frozenset({"push", "delete_credential"}),
}


class Fenced:
    """A seam whose write methods call ``check`` first; reads and attributes pass through."""

    def __init__(self, real: Any, writes: frozenset[str], check: Callable[[], None]) -> None:
        self._real = real
        self._writes = writes
        self._check = check

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        if name not in self._writes or not callable(attr):
            return attr

        def fenced(*args: Any, **kwargs: Any) -> Any:
            self._check()
            return attr(*args, **kwargs)

        return fenced
