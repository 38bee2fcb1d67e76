"""Key Vault events (SecretNearExpiry, SecretExpired), Event Grid schema or CloudEvents 1.0.

One binding takes both schemas: the worker hands over a ``func.EventGridEvent`` (type in
``event_type``) or, when the body has ``specversion``, a ``func.CloudEvent`` (type in ``type``).
Event Grid waits 30 s for an answer and retries for a day: decide fast (one Key Vault read),
queue the work. An event that cannot be parsed is logged and dropped (a retry would read the
same bytes); a Key Vault or queue failure raises, so Event Grid delivers the event again.
"""

from __future__ import annotations

import logging

import azure.functions as func

from bootstrap import services
from core.errors import BadRequest
from rotation.events import parse_event
from rotation.operations import handle_key_vault_event

bp = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions leaves __init__ unannotated
log = logging.getLogger("eventgrid")


def _event_type(event: func.EventGridEvent | func.CloudEvent) -> str:
    if isinstance(event, func.CloudEvent):
        return str(event.type or "")
    return str(event.event_type or "")


# The annotation must be a plain class for the worker's type check; a CloudEvent is accepted by it too.
@bp.function_name("on_key_vault_event")
@bp.event_grid_trigger(arg_name="event")
def on_key_vault_event(event: func.EventGridEvent) -> None:
    try:
        parsed = parse_event(_event_type(event), event.subject, event.get_json())
    except BadRequest as exc:
        log.warning("key vault event ignored: %s", exc.message, extra={"event_id": event.id})
        return
    decision = handle_key_vault_event(services(), parsed)
    log.info(
        "key vault event %s: %s",
        decision.action,
        decision.why,
        extra={"event_id": event.id, "tenant": decision.tenant, "secret": parsed.secret_name},
    )
