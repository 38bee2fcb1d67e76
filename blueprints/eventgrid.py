"""Key Vault events (SecretNearExpiry, SecretExpired), Event Grid schema or CloudEvents 1.0.

Event Grid waits 30 s for an answer and retries for a day: decide fast, queue the work.
"""

from __future__ import annotations

import logging

import azure.functions as func

from clients.factory import services
from core.errors import BadRequest
from rotation.events import parse_event
from rotation.operations import handle_key_vault_event

bp = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions leaves __init__ unannotated
log = logging.getLogger("eventgrid")


@bp.function_name("on_key_vault_event")
@bp.event_grid_trigger(arg_name="event")
def on_key_vault_event(event: func.EventGridEvent) -> None:
    # A CloudEvent arrives through the same binding; its type is `type`, not `event_type`.
    event_type = getattr(event, "event_type", None) or getattr(event, "type", "")
    try:
        parsed = parse_event(str(event_type), event.subject, event.get_json())
    except BadRequest as exc:
        log.warning("key vault event ignored: %s", exc.message, extra={"event_id": event.id})
        return
    decision = handle_key_vault_event(services(), parsed)
    log.info("key vault event %s: %s", decision.action, decision.why, extra={"event_id": event.id})
