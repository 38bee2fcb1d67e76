"""Helpers for tests/test_fuzz_http.py: requests generated from docs/openapi.yaml (by schemathesis,
and by hand for raw bytes and path edge cases), dispatched to the real function handlers, and the
oracle that says, from the document alone, whether a request is valid.

The oracle is the OpenAPI document read with ECMA-262 regular expressions (what the document's
`pattern`s mean: `$` ends the input, it does not also match before a final newline, as Python's
`re.search` lets it), plus RFC 8259/7493 rules for the body: strict JSON, no duplicate names, no
lone surrogates, no NaN/Infinity. Path and query parameters are text, and their schemas apply to
the text as sent; a required query parameter must be there.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import azure.functions as func
import yaml
from jsonschema import Draft202012Validator, validators
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "openapi.yaml"
BASE_URL = "https://func.example"

# Emulator route ids that change something (docs/emulators.md, "Route ids").
WRITE_MARKERS = (
    "set_",
    "update_",
    "add_",
    "remove_",
    "patch",
    "upsert",
    "create_",
    "delete_",
    "purge",
    "recover",
    "put_",  # graph.put_logo
)


# --- the document ------------------------------------------------------------------------------


@cache
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(DOC_PATH.read_text(encoding="utf-8"))
    return loaded


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    """(path, METHOD, operation) for every operation in the document."""
    return [
        (path, method.upper(), op)
        for path, item in document()["paths"].items()
        for method, op in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def operation(operation_id: str) -> tuple[str, str, dict[str, Any]]:
    return next(o for o in operations() if o[2]["operationId"] == operation_id)


@cache
def max_body_bytes(operation_id: str) -> int | None:
    """The largest body an operation reads, as its 413 answer states it ("larger than N bytes"); None
    for an operation that reads no body."""
    answers = operation(operation_id)[2]["responses"]
    if "413" not in answers:
        return None
    found = re.search(r"larger than ([0-9]+) bytes", resolve(answers["413"])["description"])
    assert found, f"{operation_id}: the 413 answer does not state the body limit"
    return int(found.group(1))


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _ecma_pattern(checker: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
    """`pattern` as ECMA-262 reads it: a final `$` matches only at the very end of the input."""
    if not isinstance(instance, str):
        return
    python = re.sub(r"(?<!\\)\$$", r"\\Z", pattern)
    if not re.search(python, instance):
        from jsonschema.exceptions import ValidationError

        yield ValidationError(f"{instance!r} does not match {pattern!r}")


EcmaValidator = validators.extend(Draft202012Validator, {"pattern": _ecma_pattern})


@cache
def validator(name: str) -> Any:
    registry: Registry[Any] = Registry().with_resource("urn:openapi", Resource.from_contents(document(), DRAFT202012))
    return EcmaValidator(
        {"$ref": f"urn:openapi#/components/schemas/{name}"},
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def schema_errors(name: str, instance: Any) -> list[str]:
    return [e.message for e in validator(name).iter_errors(instance)]


@cache
def _param_validator(name: str, operation_id: str) -> Any:
    """The ECMA-262 validator of one parameter's schema (a $ref to a component, or inline)."""
    path, _, op = operation(operation_id)
    params = [resolve(p) for p in document()["paths"][path].get("parameters", []) + op.get("parameters", [])]
    (param,) = [p for p in params if p["name"] == name]
    registry: Registry[Any] = Registry().with_resource("urn:openapi", Resource.from_contents(document(), DRAFT202012))
    body = param["schema"]
    if "$ref" in body:
        body = {"$ref": "urn:openapi" + body["$ref"]}
    return EcmaValidator(body, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER)


# --- the body as the document reads it ---------------------------------------------------------

NOT_JSON = object()


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError("duplicate name")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _encodable(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_encodable(k) and _encodable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_encodable(v) for v in value)
    return True


def json_media_type(content_type: str) -> bool:
    """`application/json`, in UTF-8: a charset parameter, when it names one, names UTF-8 (JSON's
    only encoding, RFC 8259; a bare `charset` names none)."""
    media, _, params = content_type.partition(";")
    if media.strip().lower() != "application/json":
        return False
    for param in params.split(";"):
        name, _, value = param.partition("=")
        charset = value.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in {"", "utf-8", "utf8"}:
            return False
    return True


def strict_json(raw: bytes) -> Any:
    """The JSON value of raw (UTF-8, RFC 8259 with I-JSON's unique names and no lone surrogates),
    or NOT_JSON."""
    try:
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return NOT_JSON
    return value if _encodable(value) else NOT_JSON


# --- one generated request ----------------------------------------------------------------------


@dataclass
class Call:
    """One request to one handler, and what the document says about it."""

    operation_id: str
    method: str
    path: str  # the templated path, e.g. /api/tenants/{tenant}
    route_params: dict[str, str] = field(default_factory=dict)
    raw: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    origin: str = ""  # which generator made it (for hypothesis.event and failure messages)

    @property
    def has_body(self) -> bool:
        return "requestBody" in operation(self.operation_id)[2]

    def body(self) -> Any:
        """The body's JSON value, or NOT_JSON when the body is not readable JSON as documented."""
        if self.content_type is None or not json_media_type(self.content_type):
            return NOT_JSON
        limit = max_body_bytes(self.operation_id)
        if limit is not None and len(self.raw) > limit:
            return NOT_JSON
        return strict_json(self.raw)

    def parameters(self) -> list[dict[str, Any]]:
        """The operation's documented parameters (the path item's and its own), resolved."""
        op = operation(self.operation_id)[2]
        return [resolve(p) for p in document()["paths"][self.path].get("parameters", []) + op.get("parameters", [])]

    def parameter_problems(self, where: str) -> dict[str, list[str]]:
        """Per documented parameter in ``where`` (path, query): why its value is invalid, if it is.
        A query parameter is text: its schema applies to the text as sent."""
        found: dict[str, list[str]] = {}
        values = self.route_params if where == "path" else self.params
        for param in self.parameters():
            if param["in"] != where:
                continue
            name = param["name"]
            if name not in values:
                if param.get("required") or where == "path":
                    found[name] = ["missing"]
                continue
            errors = [e.message for e in _param_validator(name, self.operation_id).iter_errors(values[name])]
            if errors:
                found[name] = errors
        return found

    def invalid_fields(self) -> set[str]:
        """The inputs the document calls invalid: parameter names, and ``body``."""
        fields = set(self.parameter_problems("path")) | set(self.parameter_problems("query"))
        return fields | ({"body"} if self.body_problems() else set())

    def body_problems(self) -> list[str]:
        if not self.has_body:
            return []
        body = self.body()
        if body is NOT_JSON:
            limit = max_body_bytes(self.operation_id)
            return [f"body: not application/json (UTF-8, at most {limit} bytes, strict JSON)"]
        media = operation(self.operation_id)[2]["requestBody"]["content"]["application/json"]
        name = media["schema"]["$ref"].rsplit("/", 1)[1]
        return [f"body: {e}" for e in schema_errors(name, body)]

    def problems(self) -> list[str]:
        """Why the document says this request is invalid; empty when it is valid."""
        found = []
        for where in ("path", "query"):
            for name, errors in self.parameter_problems(where).items():
                found += [f"{where} {name}: {e}" for e in errors]
        return found + self.body_problems()

    @property
    def url(self) -> str:
        path = self.path
        for name, value in self.route_params.items():
            path = path.replace("{" + name + "}", value)
        return BASE_URL + path

    def request(self) -> func.HttpRequest:
        headers = dict(self.headers)
        if self.content_type is not None:
            headers["Content-Type"] = self.content_type
        return func.HttpRequest(
            method=self.method,
            url=self.url,
            headers=headers,
            params=self.params,
            route_params=self.route_params,
            body=self.raw,
        )

    def describe(self) -> str:
        return (
            f"{self.method} {self.path} [{self.origin}] route_params={self.route_params!r} "
            f"content_type={self.content_type!r} body={self.raw[:600]!r}"
        )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def call_from_case(case: Any, operation_id: str, origin: str) -> Call:
    """A schemathesis Case as the Functions host would hand it over: path parameters decoded,
    query and headers as strings, the body serialized as JSON (bytes as they are)."""
    from schemathesis.core import NotSet

    path_params = {k: unquote(_text(v)) for k, v in (case.path_parameters or {}).items()}
    headers = {str(k): _text(v) for k, v in (case.headers or {}).items()}
    headers.pop("Content-Type", None)
    params = {str(k): _text(v) for k, v in (case.query or {}).items()}
    content_type = None
    raw = b""
    if not isinstance(case.body, NotSet):
        content_type = case.media_type or "application/json"
        raw = case.body if isinstance(case.body, bytes) else json.dumps(case.body).encode("utf-8")
    return Call(operation_id, case.method.upper(), case.path, path_params, raw, content_type, headers, params, origin)


# --- what came back -----------------------------------------------------------------------------


def strings_in(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def writes(calls: dict[str, int]) -> dict[str, int]:
    return {r: n for r, n in calls.items() if n and any(m in r for m in WRITE_MARKERS)}


def outside(calls: dict[str, int]) -> dict[str, int]:
    return {r: n for r, n in calls.items() if n and not r.startswith("control.")}


def forget_queued_work(services: Any) -> None:
    """Empty the rotation queue and forget the Graph pace (the slots handed out), as a world reset
    forgets the emulated clouds: work queued for a tenant of the world before is no one's now, and
    the pace would hold a new tenant's first run for slots reserved by tenants that are gone."""
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.blob import BlobServiceClient

    from clients.storage import BlobGraphPace
    from devenv.queue import queue_client

    settings = services.settings
    for name in (settings.rotation_queue, f"{settings.rotation_queue}-poison"):
        with contextlib.suppress(ResourceNotFoundError):
            queue_client(services, name).clear_messages()
    blobs = BlobServiceClient.from_connection_string(settings.storage.connection_string)
    with contextlib.suppress(ResourceNotFoundError):
        blobs.get_container_client(settings.lease_container).delete_blob(BlobGraphPace.BLOB)


Handler = Callable[[func.HttpRequest], func.HttpResponse]
