"""What an operator sees in Azure Monitor, read back from in-memory exporters: every metric the alert
rules and the workbook query (core.telemetry), spans and log records that name tenant, target and
step, and never a secret value in any of them."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from core import telemetry as t
from core.errors import DependencyError
from core.ports import RotationRequest
from core.span_context import ContextSpanProcessor
from devenv.scenario import provision
from tests.support import run_nightly_scan


class Exported:
    """The metric points and spans the SDK would hand to Azure Monitor's exporter."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.spans = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(ContextSpanProcessor())
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.instruments = t.Telemetry(MeterProvider(metric_readers=[self.reader]), tracer_provider)

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """(attributes, value) of every point of one metric: a sum's value, a gauge's value, a
        histogram's count."""
        data = self.reader.get_metrics_data()
        out = []
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name != name:
                        continue
                    for point in metric.data.data_points:
                        value = getattr(point, "value", None)
                        out.append((dict(point.attributes or {}), point.count if value is None else value))
        return out


@pytest.fixture
def exported():
    found = Exported()
    t.use_telemetry(found.instruments)
    yield found
    t.use_telemetry(None)


def outcomes(exported: Exported, trigger: str = "due") -> dict[tuple[str, str, str], int]:
    """Rotation attempts of one trigger (provisioning's own first run counts as ``provision``)."""
    return {
        (a["tenant"], a["target"], a["outcome"]): v for a, v in exported.points(t.ROTATIONS) if a["trigger"] == trigger
    }


def test_a_rotation_is_counted_timed_and_leaves_its_days_left(svc, emulators, exported):
    tenant = provision(svc, emulators, "acme", "v3-credential")
    emulators.world.clock.advance(days=710)

    outcome = svc.engine.rotate("acme", reason="due")

    assert outcome.result.value == "rotated"
    counted = outcomes(exported)
    assert counted == {("acme", "v3-credential", "rotated"): 1}
    assert outcomes(exported, "provision") == {("acme", "v3-credential", "rotated"): 1}
    durations = {(a["target"], a["outcome"]): n for a, n in exported.points(t.ROTATION_DURATION)}
    assert durations[("v3-credential", "rotated")] == 2  # the provisioning run and this one
    (days,) = [v for a, v in exported.points(t.DAYS_LEFT) if a["tenant"] == tenant.name]
    assert 700 < days <= 730
    calls = {(a["dependency"], a["status"]) for a, _ in exported.points(t.DEPENDENCY_CALLS)}
    assert {("microsoft-graph", "200"), ("key-vault", "200"), ("entra-id", "200"), ("nylas", "200")} <= calls


def storage_answers(exported: Exported) -> dict[str, int]:
    return {a["status"]: v for a, v in exported.points(t.DEPENDENCY_CALLS) if a["dependency"] == "storage"}


def test_storage_answers_are_counted_for_the_lease_and_the_queue(svc, exported):
    """Storage is where an app that lost its role fails first: its answers are counted too."""
    with svc.deps.leases.hold("acme"):  # a first run on Azurite: 404, the blob made, then the lease
        pass
    lease = storage_answers(exported)
    assert lease.get("404", 0) >= 1 and lease.get("201", 0) >= 2 and lease.get("200", 0) >= 1, lease

    svc.queue.send(RotationRequest("acme", "forced"))

    assert storage_answers(exported).get("201", 0) > lease["201"]  # the message, put


def test_a_failed_rotation_is_counted_as_failed_and_alerted(svc, emulators, exported, alerts):
    provision(svc, emulators, "acme", "v2-integration")
    emulators.world.clock.advance(days=710)
    emulators.world.entra.propagation_delay = 10_000.0  # the new secret never verifies: roll back

    outcome = svc.engine.rotate("acme", reason="due")

    assert outcome.result.value == "rolled-back"
    assert outcomes(exported)[("acme", "v2-integration", "rolled-back")] == 1
    kinds = {(a["kind"], a["tenant"]): v for a, v in exported.points(t.ALERTS)}
    assert kinds[("verification-failed", "acme")] >= 1
    assert set(alerts.kinds()) >= {"verification-failed"}


@pytest.mark.parametrize(("status", "outcome"), [(503, "interrupted"), (400, "failed")])
def test_a_rotation_that_raises_is_counted_as_failed_or_interrupted(svc, emulators, exported, status, outcome):
    """A 503 is the queue's to retry (interrupted: no page); a 400 will not get better (failed: the
    rotation-failed rule fires)."""
    provision(svc, emulators, "acme", "v3-connector")
    emulators.world.clock.advance(days=710)
    emulators.world.faults.inject("graph.add_password", status=status, times=50)

    with pytest.raises(DependencyError):
        svc.engine.rotate("acme", reason="due")

    assert outcomes(exported)[("acme", "v3-connector", outcome)] == 1
    assert (outcome in t.FAILED_OUTCOMES) is (status == 400)
    answers = {(a["dependency"], a["status"]) for a, _ in exported.points(t.DEPENDENCY_CALLS)}
    assert ("microsoft-graph", str(status)) in answers


def test_a_nightly_scan_records_its_success_and_every_tenants_days_left(svc, emulators, exported):
    provision(svc, emulators, "acme", "v3-credential")
    provision(svc, emulators, "globex", "v2-integration")
    before = emulators.world.clock.now().timestamp()

    run_nightly_scan()

    assert [v for a, v in exported.points(t.SCANS) if a["outcome"] == "success"] == [1]
    (last,) = [v for _, v in exported.points(t.SCAN_LAST_SUCCESS)]
    assert last >= before - 1
    days = {a["tenant"]: (a["target"], a["state"], v) for a, v in exported.points(t.DAYS_LEFT)}
    assert days["acme"][:2] == ("v3-credential", "current") and 729 < days["acme"][2] <= 730
    assert days["globex"][:2] == ("v2-integration", "current")


def test_a_scan_that_fails_is_counted_and_moves_no_last_success(svc, emulators, exported):
    emulators.world.faults.inject("keyvault.list_secrets", status=503, times=50)

    with pytest.raises(Exception):  # noqa: B017
        run_nightly_scan()

    assert [v for a, v in exported.points(t.SCANS) if a["outcome"] == "failed"] == [1]
    assert exported.points(t.SCAN_LAST_SUCCESS) == []


def test_spans_and_log_records_name_tenant_target_and_step_and_hold_no_secret(svc, emulators, exported, caplog):
    provision(svc, emulators, "acme", "v3-credential")
    emulators.world.clock.advance(days=710)
    caplog.clear()

    svc.engine.rotate("acme", reason="due")

    (rotation,) = [
        s
        for s in exported.spans.get_finished_spans()
        if s.name == "rotation" and (s.attributes or {}).get("rotator.trigger") == "due"
    ]
    attributes = dict(rotation.attributes or {})
    assert attributes["rotator.tenant"] == "acme" and attributes["rotator.target"] == "v3-credential"
    assert attributes["rotator.step"] == "rotate" and attributes["rotator.outcome"] == "rotated"
    ours = [r for r in caplog.records if not r.name.startswith(("azure", "urllib3", "msal", "httpx"))]
    assert ours, "the rotation logged nothing of its own"
    for record in ours:
        assert getattr(record, "rotator.tenant", None) == "acme", record.getMessage()
        assert "acme" in record.getMessage()
        assert getattr(record, "rotator.target", None) == "v3-credential"
        assert getattr(record, "rotator.step", None)
    secrets = emulators.world.secret_values()
    texts = [str(dict(s.attributes or {})) + s.name for s in exported.spans.get_finished_spans()]
    texts += [str(a) for name in t.METRIC_NAMES for a, _ in exported.points(name)]
    assert not [s[:3] for s in secrets if any(s in text for text in texts)]


def test_sdk_http_logging_stays_at_warning():
    from clients import azure_monitor

    azure_monitor.setup({})  # no connection string: nothing exported, the loggers are still quieted

    assert logging.getLogger("azure.core.pipeline.policies.http_logging_policy").getEffectiveLevel() == logging.WARNING


def test_without_a_connection_string_nothing_is_exported_and_with_aad_auth_the_identity_signs_in():
    from azure.identity import ManagedIdentityCredential

    from clients import azure_monitor

    assert azure_monitor.setup({}) is False
    assert azure_monitor._entra_credential({}) is None
    signed = azure_monitor._entra_credential(
        {"APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=AAD;ClientId=11111111-1111-1111-1111-111111111111"}
    )
    assert isinstance(signed, ManagedIdentityCredential)


def test_with_a_connection_string_azure_monitor_gets_spans_stamped_with_the_tenant(tmp_path):
    """The exporting path as Azure runs it, in a fresh interpreter (it installs process-wide
    providers): the distro is configured, and a span started inside a tenant's block carries it.
    Nothing is sent: the ingestion endpoint is a closed local port and nothing is flushed. Every
    span is sampled here; the distro's default keeps at most 5 traces a second."""
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "export.py"
    script.write_text(
        """
import json
from opentelemetry import trace
from clients import azure_monitor
from core.telemetry import work_on

env = {"APPLICATIONINSIGHTS_CONNECTION_STRING":
       "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://127.0.0.1:9/"}
assert azure_monitor.setup(env) is True
with work_on(tenant="acme", target="v3-credential", step="verify"):
    with trace.get_tracer("t").start_as_current_span("call") as span:
        attributes = dict(span.attributes)
print(json.dumps(attributes))
"""
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=root,
        env={
            "PYTHONPATH": str(root),
            "PATH": "",
            "OTEL_TRACES_SAMPLER": "microsoft.fixed_percentage",
            "OTEL_TRACES_SAMPLER_ARG": "1.0",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    attributes = json.loads(done.stdout.strip().splitlines()[-1])
    assert {k: attributes.get(k) for k in ("rotator.tenant", "rotator.target", "rotator.step")} == {
        "rotator.tenant": "acme",
        "rotator.target": "v3-credential",
        "rotator.step": "verify",
    }
