"""Play the Functions host for the rotation queue on Azurite: hand each message to the real
queue function, then delete it.

The host's retry shape (host.json ``extensions.queues``) is kept in small: a message whose call
raised is handed out again, and after ``MAX_DEQUEUE_COUNT`` tries moves to ``<queue>-poison``,
whose messages go to ``rotation_poison``. Used by the demo, the tests and the simulation.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import azure.functions as func
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

if TYPE_CHECKING:
    from bootstrap import Services

log = logging.getLogger("devenv.queue")
VISIBILITY_SECONDS = 60


def queue_client(services: Services, name: str | None = None) -> QueueClient:
    """A client of the rotation queue (or ``name``) that reads and writes base64 like the host."""
    connection = services.settings.storage.connection_string
    if not connection:
        raise RuntimeError("drain needs a storage connection string (Azurite): AzureWebJobsStorage")
    return QueueClient.from_connection_string(
        connection,
        name or services.settings.rotation_queue,
        message_encode_policy=TextBase64EncodePolicy(),
        message_decode_policy=TextBase64DecodePolicy(),
    )


@dataclass
class Delivery:
    """One call of a queue function by ``drain``."""

    queue: str
    message_id: str
    body: str
    dequeue_count: int
    error: str = ""  # the exception's class when the function raised

    @property
    def request(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


def drain(
    services: Services,
    *,
    max_dequeue_count: int | None = None,
    max_rounds: int = 50,
    around: Callable[[Delivery], AbstractContextManager[None]] | None = None,
    wait_delayed_seconds: float = 300.0,
) -> list[Delivery]:
    """Deliver every message of the rotation queue (and its poison queue) to its function until
    both are empty, the way the host does: a message whose call raised is handed out again, and
    after ``maxDequeueCount`` tries moves to ``<queue>-poison``. ``around`` wraps each call (the
    simulation arms crashes with it). Messages queued with a delay (paced rotations) are waited
    for, in real time, up to ``wait_delayed_seconds``. Returns every call, in order."""
    from blueprints.queue import MAX_DEQUEUE_COUNT, rotate_from_queue, rotation_poison

    limit = max_dequeue_count or MAX_DEQUEUE_COUNT
    main = queue_client(services)
    poison = queue_client(services, f"{services.settings.rotation_queue}-poison")
    deliveries: list[Delivery] = []
    waited = 0.0
    rounds = 0
    while rounds < max_rounds:
        progressed = False
        for client, function in ((main, rotate_from_queue), (poison, rotation_poison)):
            try:
                messages = list(
                    client.receive_messages(
                        messages_per_page=32, max_messages=32, visibility_timeout=VISIBILITY_SECONDS
                    )
                )
            except ResourceNotFoundError:  # nothing was ever queued
                continue
            for message in messages:
                progressed = True
                delivery = Delivery(client.queue_name, message.id, message.content, message.dequeue_count or 0)
                deliveries.append(delivery)
                try:
                    with around(delivery) if around else contextlib.nullcontext():
                        function(
                            func.QueueMessage(id=message.id, body=message.content, pop_receipt=message.pop_receipt)
                        )
                except Exception as exc:
                    delivery.error = exc.__class__.__name__
                    log.warning(
                        "queue function raised %s (try %s)",
                        delivery.error,
                        message.dequeue_count,
                        extra={"message_id": message.id},
                    )
                    if client is poison:
                        raise
                    if delivery.dequeue_count >= limit:
                        with contextlib.suppress(ResourceExistsError):
                            poison.create_queue()
                        poison.send_message(message.content)
                        client.delete_message(message)
                    else:
                        client.update_message(message, visibility_timeout=0)
                    continue
                client.delete_message(message)
        if progressed:
            rounds += 1
            continue
        if waited >= wait_delayed_seconds or not _invisible_messages(main):
            return deliveries
        time.sleep(0.25)  # a delayed message becomes visible on Azurite's (real) clock
        waited += 0.25
    raise RuntimeError(f"the rotation queue did not drain in {max_rounds} rounds")


def _invisible_messages(client: QueueClient) -> bool:
    try:
        return bool(client.get_queue_properties().approximate_message_count)
    except ResourceNotFoundError:
        return False
