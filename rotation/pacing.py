"""Pacing Graph writes to apps that sign in personal accounts.

Graph allows 60 POST/PATCH/DELETE a minute on such applications (world-facts §4c,
source G11), while other apps get 70,000 per five minutes. A rotation makes two
application writes (addPassword, then removePassword), so a night with many such
tenants due must be spread out, or most of them would meet a 429.

- The nightly fan-out reserves one start slot per paced tenant, ``interval`` apart,
  from a pace shared by every instance (``clients.storage.BlobGraphPace``), and queues
  each message with that slot as its visibility delay.
- A request queued without a slot (an event, an on-demand run) reserves one when the
  queue function first sees it.
- A 429 that carries ``x-ms-throttle-scope`` is the quota speaking, not bad luck on one
  call: the pace pauses every paced start for Retry-After, and messages whose slot
  falls in the pause take new slots after it, one interval apart (no storm on resume).

Whether addPassword/removePassword count against the 60 is not documented; we assume
they do (the safe reading), see docs/emulators.md.
"""

from __future__ import annotations

from core.settings import Settings

WRITES_PER_ROTATION = 2  # addPassword, removePassword
DEFAULT_PAUSE_SECONDS = 60.0  # a 429 without Retry-After: one quota window
EARLY_TOLERANCE_SECONDS = 1.0  # a message this close to its slot starts now


def interval_seconds(settings: Settings) -> float:
    """Seconds between two paced rotation starts."""
    return WRITES_PER_ROTATION * 60.0 / settings.graph_writes_per_minute


def delays(slots: list[float], now: float) -> list[float]:
    return [max(0.0, slot - now) for slot in slots]
