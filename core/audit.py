"""Who asked: the caller on whose behalf the code runs now, for the logs and the Key Vault tags.

The HTTP API sets it once a request's access token is validated (blueprints/caller_auth.py), for
the time the handler runs. Work that goes on elsewhere on the caller's behalf (the rotation queue)
carries it along: read ``current_caller()`` when sending, run the work inside
``acting_for(identity)`` when it arrives. While one is set:

- every log record carries it as the attribute ``requested_by`` (a log-record factory installed on
  first use; do not pass ``requested_by`` in ``extra=`` yourself: logging refuses to overwrite it);
- every secret version the Key Vault client writes gets the tag ``requested-by``
  (clients/keyvault.py; ``stamp``).

An identity is short text, never token content: ``user:<upn or name> oid:<object id>`` or
``app:<client id> oid:<object id>``, at most 256 characters (Key Vault's limit for a tag value).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

REQUESTED_BY_TAG = "requested-by"
LOG_FIELD = "requested_by"
MAX_IDENTITY_CHARS = 256  # a Key Vault tag value's limit
MAX_TAGS = 15  # Key Vault's limit of tags on one secret version

_caller: ContextVar[str] = ContextVar("requested_by", default="")
_install_lock = threading.Lock()
_installed = False


def current_caller() -> str:
    """The identity the code runs for now, or "" (the nightly scan, a timer, no caller)."""
    return _caller.get()


def clean_identity(text: str) -> str:
    """Printable, single-spaced, at most 256 characters: safe in a tag value and a log line."""
    printable = "".join(c if c.isprintable() else " " for c in str(text))
    return " ".join(printable.split())[:MAX_IDENTITY_CHARS]


def user_identity(name: str, oid: str) -> str:
    """A signed-in person: their UPN or name, and their object id (kept whole; the name is cut)."""
    suffix = f" oid:{clean_identity(oid)[:64]}"
    return clean_identity(f"user:{clean_identity(name)[: MAX_IDENTITY_CHARS - len(suffix) - 5]}{suffix}")


def app_identity(app_id: str, oid: str) -> str:
    """An application acting as itself: its client id (appid/azp) and its service principal's object id."""
    return clean_identity(f"app:{clean_identity(app_id)[:64]} oid:{clean_identity(oid)[:64]}")


@contextmanager
def acting_for(identity: str) -> Iterator[str]:
    """Run the body on behalf of ``identity`` (an empty one clears it): logs and Key Vault writes
    name it. Nested uses restore the outer identity on exit."""
    install_log_field()
    cleaned = clean_identity(identity)
    token = _caller.set(cleaned)
    try:
        yield cleaned
    finally:
        _caller.reset(token)


def stamp(tags: Mapping[str, str]) -> tuple[dict[str, str], bool]:
    """``tags`` with ``requested-by`` naming the current caller, and whether it could be written.

    With no caller the tags are returned as given (a ``requested-by`` carried over by the caller of
    this function stays). With a caller the tag is set, overwriting a carried one, unless the version
    already holds Key Vault's 15 tags without it: then the tags are returned unchanged and False
    (the write must not fail for want of an audit tag; the logs still name the caller)."""
    out = dict(tags)
    caller = current_caller()
    if not caller:
        return out, True
    if REQUESTED_BY_TAG not in out and len(out) >= MAX_TAGS:
        return out, False
    out[REQUESTED_BY_TAG] = caller
    return out, True


def keep_requester(tags: Mapping[str, str], previous: Mapping[str, str] | None) -> dict[str, str]:
    """``tags`` plus the ``requested-by`` of the version they replace, if it had one: for a tag update
    made for nobody (a resumed rotation) that should not erase who asked for the version."""
    out = dict(tags)
    if previous and REQUESTED_BY_TAG in previous and REQUESTED_BY_TAG not in out:
        out[REQUESTED_BY_TAG] = previous[REQUESTED_BY_TAG]
    return out


def install_log_field() -> None:
    """Make every log record carry ``requested_by`` while a caller is set (idempotent)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            caller = _caller.get()
            if caller:
                setattr(record, LOG_FIELD, caller)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True
