"""What the service tells Azure Monitor: one place for every metric name, attribute and outcome.

The OpenTelemetry API is a no-op until a meter provider is installed: ``observability.setup``
installs Azure Monitor's when ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set, tests install an
in-memory reader. The names below are what infra/modules/alerts.bicep queries (as
``customMetrics | where name == ...``); tests/infra checks that every name a rule queries is here.

Attribute values are tenant slugs, target and outcome names, dependency names and HTTP statuses:
never a secret, a key id or a message text.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any, Final

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation

METER_NAME: Final = "nylas-entra-rotator"

# Instrument names (Azure Monitor: customMetrics.name) and their attributes (customDimensions).
DAYS_LEFT: Final = "rotator.secret.days_left"  # gauge; tenant, target, state
ROTATIONS: Final = "rotator.rotations"  # counter; tenant, target, outcome, trigger
ROTATION_DURATION: Final = "rotator.rotation.duration"  # histogram, seconds; target, outcome
SCAN_LAST_SUCCESS: Final = "rotator.scan.last_success"  # gauge, unix seconds of the last good scan
SCANS: Final = "rotator.scans"  # counter; outcome (success, failed)
ALERTS: Final = "rotator.alerts"  # counter; kind, tenant
DEPENDENCY_CALLS: Final = "rotator.dependency.calls"  # counter; dependency, status

METRIC_NAMES: Final = frozenset(
    {DAYS_LEFT, ROTATIONS, ROTATION_DURATION, SCAN_LAST_SUCCESS, SCANS, ALERTS, DEPENDENCY_CALLS}
)

# Outcomes of a rotation attempt that a person must hear about (the "rotation failed" rule). Not
# "interrupted": a transient error the queue retries (its fifth failure is a poison message, which
# has a rule of its own).
FAILED_OUTCOMES: Final = frozenset({"failed", "rolled-back", "refused", "nylas-refused"})


class _Gauges:
    """The last value of each gauge series, read by the SDK at each export (observable gauges:
    the value stays visible between scans, and disappears with the process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.days_left: dict[tuple[str, str, str], float] = {}
        self.last_scan: float | None = None

    def observe_days_left(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            items = list(self.days_left.items())
        return [
            Observation(days, {"tenant": t, "target": target, "state": state}) for (t, target, state), days in items
        ]

    def observe_last_scan(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            last = self.last_scan
        return [] if last is None else [Observation(last)]


class Telemetry:
    """The instruments, created against whatever meter provider is global when first used."""

    def __init__(
        self, provider: metrics.MeterProvider | None = None, tracer_provider: trace.TracerProvider | None = None
    ) -> None:
        meter = (provider or metrics.get_meter_provider()).get_meter(METER_NAME)
        self.tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer(METER_NAME)
        self.gauges = _Gauges()
        self.rotations = meter.create_counter(ROTATIONS, unit="{rotation}", description="Rotation attempts by outcome")
        self.duration = meter.create_histogram(ROTATION_DURATION, unit="s", description="Time one rotation took")
        self.scans = meter.create_counter(SCANS, unit="{scan}", description="Nightly scans by outcome")
        self.alerts = meter.create_counter(ALERTS, unit="{alert}", description="Alerts sent, by kind")
        self.calls = meter.create_counter(
            DEPENDENCY_CALLS,
            unit="{call}",
            description="Calls to Graph, Entra, Key Vault, Nylas and Storage, by status",
        )
        meter.create_observable_gauge(
            DAYS_LEFT, [self.gauges.observe_days_left], unit="d", description="Days until the live secret expires"
        )
        meter.create_observable_gauge(
            SCAN_LAST_SUCCESS,
            [self.gauges.observe_last_scan],
            unit="s",
            description="Unix time of the last successful nightly scan",
        )

    def rotation(self, *, tenant: str, target: str, outcome: str, trigger: str, seconds: float) -> None:
        self.rotations.add(1, {"tenant": tenant, "target": target, "outcome": outcome, "trigger": trigger})
        self.duration.record(seconds, {"target": target, "outcome": outcome})

    def days_left(self, *, tenant: str, target: str, state: str, days: float) -> None:
        with self.gauges._lock:
            for key in [k for k in self.gauges.days_left if k[0] == tenant]:
                del self.gauges.days_left[key]  # one series per tenant: its target or state may change
            self.gauges.days_left[(tenant, target, state)] = round(days, 2)

    def all_days_left(self, series: Iterable[tuple[str, str, str, float]]) -> None:
        """The nightly scan's view of every tenant (tenant, target, state, days): it replaces the last,
        so a retired tenant's series ends."""
        fresh = {(t, target, state): round(days, 2) for t, target, state, days in series}
        with self.gauges._lock:
            self.gauges.days_left = fresh

    def forget(self, tenant: str) -> None:
        with self.gauges._lock:
            for key in [k for k in self.gauges.days_left if k[0] == tenant]:
                del self.gauges.days_left[key]

    def scan(self, *, ok: bool, at: float | None = None) -> None:
        self.scans.add(1, {"outcome": "success" if ok else "failed"})
        if ok:
            with self.gauges._lock:
                self.gauges.last_scan = time.time() if at is None else at

    def alert(self, *, kind: str, tenant: str) -> None:
        self.alerts.add(1, {"kind": kind, "tenant": tenant})

    def call(self, *, dependency: str, status: int | str) -> None:
        self.calls.add(1, {"dependency": dependency, "status": str(status)})


_lock = threading.Lock()
_current: Telemetry | None = None


def telemetry() -> Telemetry:
    """The process's instruments (created on first use against the global meter provider)."""
    global _current
    with _lock:
        if _current is None:
            _current = Telemetry()
        return _current


def tracer() -> trace.Tracer:
    return telemetry().tracer


def use_telemetry(instance: Telemetry | None) -> None:
    """Tests: record into instruments made against their own in-memory meter provider."""
    global _current
    with _lock:
        _current = instance


# --- what every span and log record says: the tenant, its target, the step ------------------------

CONTEXT_KEYS: Final = ("tenant", "target", "step")
_context: ContextVar[dict[str, str] | None] = ContextVar("rotator_context", default=None)


@contextlib.contextmanager
def work_on(**attrs: str) -> Iterator[dict[str, str]]:
    """Within this block, every log record and span carries these attributes (tenant, target,
    step), and a record's message names the tenant. Nested blocks add to the outer one."""
    outer = _context.get()
    inner = {**(outer or {}), **{k: v for k, v in attrs.items() if v}}
    token = _context.set(inner)
    try:
        yield inner
    finally:
        _context.reset(token)


def annotate(**attrs: str) -> None:
    """Add to the current block what was learnt inside it (the target, once the record is read;
    the step, as the machine moves). Outside any block it does nothing."""
    current = _context.get()
    if current is not None:
        current.update({k: v for k, v in attrs.items() if v})


def current_context() -> dict[str, str]:
    return dict(_context.get() or {})


def install_log_context() -> None:
    """Make every log record carry the current tenant, target and step as attributes
    (``rotator.tenant``, ``rotator.target``, ``rotator.step``, as on spans), and name the tenant in its
    message text. The Functions worker forwards only a record's message to
    Application Insights (world-facts §6, [F2]): the text is what an operator can always search.
    """
    previous = logging.getLogRecordFactory()
    if getattr(previous, "_rotator", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        attrs = _context.get()
        if attrs:
            for key, value in attrs.items():
                # Namespaced as on spans: ``extra={"tenant": ...}`` stays possible (logging refuses
                # an extra key the record already has).
                setattr(record, f"rotator.{key}", value)
            tenant = attrs.get("tenant")
            if tenant and isinstance(record.msg, str) and tenant not in record.msg:
                record.msg = f"[{tenant}] {record.msg}"
        return record

    factory._rotator = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def flush(timeout_millis: int = 10_000) -> None:
    """Export what is recorded now: an instance may be recycled before the next periodic export (60 s),
    and the nightly scan's success is what the dead-man's switch waits for."""
    provider = metrics.get_meter_provider()
    force_flush = getattr(provider, "force_flush", None)
    if callable(force_flush):
        force_flush(timeout_millis)


def count_call(dependency: str, status: int | str) -> None:
    """One answer from an outside system (every try, retries included)."""
    telemetry().call(dependency=dependency, status=status)
