"""The span processor that stamps every span with the tenant, target and step of its ``work_on`` block.

Apart from core.telemetry because it needs the OpenTelemetry SDK (about 17 ms of imports, psutil
among them), which only an exporting process loads: core.telemetry, imported at every cold start,
needs only the API.
"""

from __future__ import annotations

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from core.telemetry import current_context


class ContextSpanProcessor(SpanProcessor):
    """Stamps every span started inside a ``work_on`` block (ours, and the SDKs' HTTP spans) with
    its tenant, target and step."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for key, value in current_context().items():
            span.set_attribute(f"rotator.{key}", value)

    def on_end(self, span: ReadableSpan) -> None:
        return None
