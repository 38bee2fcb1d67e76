"""HTTP API: provision, status, branding, rotate now, confirm a manual update, retire.

Callers sign in with Entra ID (blueprints/caller_auth.py): each handler is wrapped in
``requires(<app role>)``, which answers 401/403 before the handler runs and runs it on the caller's
behalf. Tenants.Read reads, Tenants.Provision provisions, changes and retires, Rotations.Operate
rotates and confirms. The routes' auth level is ``ROUTE_AUTH_LEVEL``: ANONYMOUS when
``CALLER_AUTH=entra`` is set (the token is the check), else FUNCTION (the host's function keys).

- ``POST /api/tenants`` makes the tenant exist (app, service principal, first secret in Key Vault)
  and answers 202 with ``Location``: Azure ends an HTTP request at 230 s, and Entra may take
  longer to accept a new secret, so proving it, pushing it to Nylas and finishing are queued.
  ``GET /api/tenants/{tenant}`` shows ``pending`` until ``current`` (or ``awaiting-confirmation``);
  the same POST meanwhile answers the same 202; for a settled tenant, 200.
- ``GET /api/tenants/{tenant}`` adds ``readiness`` (verified publisher, publisher domain, consent).
- ``PATCH /api/tenants/{tenant}`` changes the app's branding (``{"branding": {...}}``), idempotently.
- ``POST /api/tenants/{tenant}/rotate`` queues a forced rotation and answers 202 at once, with
  ``Location`` (and ``status`` in the body) naming where to read the tenant's state.
- ``POST /api/tenants/{tenant}/rotation/confirm`` says an operator pasted the new secret into a
  manual Nylas target: the previous credential is revoked and the version marked current. 409
  ``nothing_to_confirm`` when no rotation awaits confirmation.
- ``DELETE /api/tenants/{tenant}?confirm={tenant}[&deleteApp=true]`` retires a tenant
  (provisioning/retire.py): idempotent, leased, resumable; without ``confirm`` naming the
  tenant it is a 400 that changes nothing.

Each handler parses input, calls one use case, shapes output. Errors go through
``http_errors.to_response``: a JSON body that says what is wrong and where.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import azure.functions as func

from blueprints.caller_auth import ROTATIONS_OPERATE, ROUTE_AUTH_LEVEL, TENANTS_PROVISION, TENANTS_READ, requires
from blueprints.http_errors import error_response, json_response, to_response
from bootstrap import services
from core.errors import BadRequest
from core.record import SLUG
from provisioning.branding import update_branding
from provisioning.request import MAX_BRANDING_BODY_BYTES, parse_body, parse_branding_update, parse_request
from provisioning.retire import check_confirmation
from provisioning.status import ReadinessContext, get_tenant, list_tenants
from rotation.operations import queue_rotation

bp = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions leaves __init__ unannotated
log = logging.getLogger("http")


def _tenant(req: func.HttpRequest) -> str:
    tenant = str(req.route_params.get("tenant", ""))
    if not SLUG.fullmatch(tenant) or len(tenant) > 40:
        raise BadRequest(
            "tenant must be lowercase letters, digits and single dashes, 1 to 40 characters", field="tenant"
        )
    return tenant


def _handle(work: Callable[[], func.HttpResponse]) -> func.HttpResponse:
    try:
        return work()
    except Exception as exc:
        return to_response(exc)


@bp.function_name("provision_tenant")
@bp.route(route="tenants", methods=["POST"], auth_level=ROUTE_AUTH_LEVEL)
@requires(TENANTS_PROVISION)
def provision_tenant(req: func.HttpRequest) -> func.HttpResponse:
    def work() -> func.HttpResponse:
        data = parse_body(req.get_body(), req.headers.get("Content-Type", ""))
        svc = services()
        request = parse_request(
            data,
            default_lifetime_days=svc.settings.default_lifetime_days,
            default_rotate_before_days=svc.settings.default_rotate_before_days,
        )
        # Azure ends an HTTP request at 230 s, and Entra may take longer to accept a new secret: the
        # request makes the tenant exist and answers 202; the queue proves, pushes and finishes.
        result = svc.provisioner.begin(request)
        location = f"/api/tenants/{request.tenant}"
        if result.follow_up is None:
            log.info("tenant %s already provisioned", request.tenant, extra={"tenant": request.tenant})
            return json_response(result.view.to_json(), 200, {"Location": location})
        svc.queue.send(result.follow_up)
        log.info(
            "tenant %s %s; verification and Nylas continue through the queue",
            request.tenant,
            "created" if result.created else "in progress",
            extra={"tenant": request.tenant, "step": "provision"},
        )
        body = {**result.view.to_json(), "status": location}
        return json_response(body, 202, {"Location": location, "Retry-After": "10"})

    return _handle(work)


@bp.function_name("list_tenants")
@bp.route(route="tenants", methods=["GET"], auth_level=ROUTE_AUTH_LEVEL)
@requires(TENANTS_READ)
def list_tenants_http(req: func.HttpRequest) -> func.HttpResponse:
    def work() -> func.HttpResponse:
        views = [v.to_json() for v in list_tenants(services().deps.vault, services().settings.secret_prefix)]
        return json_response({"tenants": views, "count": len(views)})

    return _handle(work)


@bp.function_name("get_tenant")
@bp.route(route="tenants/{tenant}", methods=["GET"], auth_level=ROUTE_AUTH_LEVEL)
@requires(TENANTS_READ)
def get_tenant_http(req: func.HttpRequest) -> func.HttpResponse:
    def work() -> func.HttpResponse:
        svc = services()
        # With its readiness for production (one Graph read of the app): docs/going-to-production.md.
        context = ReadinessContext.of(svc.provisioner)
        view = get_tenant(svc.deps.vault, svc.settings.secret_prefix, _tenant(req), readiness=context)
        return json_response(view.to_json())

    return _handle(work)


@bp.function_name("update_tenant")
@bp.route(route="tenants/{tenant}", methods=["PATCH"], auth_level=ROUTE_AUTH_LEVEL)
@requires(TENANTS_PROVISION)
def update_tenant(req: func.HttpRequest) -> func.HttpResponse:
    """Change a tenant's branding (the app's links and logo, shown on the consent screen). Idempotent:
    the same body again writes nothing and answers ``changed: []``."""

    def work() -> func.HttpResponse:
        tenant = _tenant(req)
        body = parse_body(req.get_body(), req.headers.get("Content-Type", ""), max_bytes=MAX_BRANDING_BODY_BYTES)
        wanted = parse_branding_update(body)  # every field checked before anything is read
        svc = services()
        result = update_branding(svc.deps, svc.settings.secret_prefix, tenant, wanted)
        log.info("tenant %s branding: %s", tenant, ", ".join(result.changed) or "unchanged", extra={"tenant": tenant})
        return json_response(result.to_json())

    return _handle(work)


@bp.function_name("retire_tenant")
@bp.route(route="tenants/{tenant}", methods=["DELETE"], auth_level=ROUTE_AUTH_LEVEL)
@requires(TENANTS_PROVISION)
def retire_tenant(req: func.HttpRequest) -> func.HttpResponse:
    def work() -> func.HttpResponse:
        tenant = _tenant(req)
        delete_app = _flag(req, "deleteApp")
        confirm = str(req.params.get("confirm", ""))
        check_confirmation(tenant, confirm)  # before anything is read or written
        result = services().retirement.retire(tenant, confirm=confirm, delete_app=delete_app)
        log.info("tenant retired", extra={"tenant": tenant, "already": result.already_retired})
        return json_response(result.to_json())

    return _handle(work)


def _flag(req: func.HttpRequest, name: str) -> bool:
    raw = str(req.params.get(name, "false")).lower()
    if raw not in ("true", "false"):
        raise BadRequest(f"{name} must be true or false", field=name)
    return raw == "true"


@bp.function_name("rotate_tenant")
@bp.route(route="tenants/{tenant}/rotate", methods=["POST"], auth_level=ROUTE_AUTH_LEVEL)
@requires(ROTATIONS_OPERATE)
def rotate_tenant(req: func.HttpRequest) -> func.HttpResponse:
    def work() -> func.HttpResponse:
        tenant = _tenant(req)
        queued = queue_rotation(services(), tenant)
        return json_response(
            {
                "tenant": tenant,
                "queued": True,
                "reason": queued.reason,
                "version": queued.version,
                "status": f"/api/tenants/{tenant}",
            },
            202,
            {"Location": f"/api/tenants/{tenant}"},
        )

    return _handle(work)


@bp.function_name("confirm_rotation")
@bp.route(route="tenants/{tenant}/rotation/confirm", methods=["POST"], auth_level=ROUTE_AUTH_LEVEL)
@requires(ROTATIONS_OPERATE)
def confirm_rotation(req: func.HttpRequest) -> func.HttpResponse:
    def work() -> func.HttpResponse:
        tenant = _tenant(req)
        outcome = services().engine.confirm(tenant)
        return json_response(
            {
                "tenant": tenant,
                "result": outcome.result.value,
                "keyId": outcome.key_id,
                "revokedKeyId": outcome.previous_key_id,
            }
        )

    return _handle(work)


__all__ = ["bp", "error_response"]
