"""``python -m rotator``: the operator's view of the service, from a shell.

The same settings (``core.settings``) and use cases (``rotation``, ``provisioning``) as the
function app, through ``bootstrap.services()``. Human tables on stdout by default; ``--json``
prints one JSON document on stdout instead. Progress and errors go to stderr.

Exit codes: 0 done; 1 the work failed (a dependency refused, a rotation rolled back, a tenant is
busy or unknown, nothing to confirm); 2 bad usage, settings or input.

Nothing printed is ever a secret value: ids, key ids, hints and Key Vault references only.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, NoReturn

from bootstrap import Services, build_services, services, use_services
from core.errors import (
    BadRequest,
    DependencyError,
    LeaseBusy,
    NothingToConfirm,
    NotOwned,
    ServiceError,
    TenantNotFound,
)
from core.settings import SETTINGS, Settings, SettingsError
from provisioning.branding import update_branding
from provisioning.publisher import Publisher, signed_in_operator
from provisioning.readiness import Readiness
from provisioning.request import (
    MAX_BRANDING_BODY_BYTES,
    Branding,
    logo_from_file,
    parse_body,
    parse_branding_update,
    parse_request,
)
from provisioning.status import ReadinessContext, get_tenant, list_tenants, readiness_by_tenant
from rotation.engine import Outcome, Result
from rotation.maintenance import Cleanup, CleanupReport, Disposition, NextRun, Plan, PlanItem, plan
from rotation.pacing import interval_seconds
from rotation.scanner import scan
from rotation.windows import parse as parse_window
from rotator.output import date, days_left, stamp, table

PROG = "python -m rotator"
OK, FAILED, USAGE = 0, 1, 2
RUNBOOK = "docs/runbook.md"
log = logging.getLogger("rotator")


class UsageError(Exception):
    """Bad command line, settings file or input: exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}\n{self.format_usage().strip()}")


@dataclass
class Io:
    out: IO[str]
    err: IO[str]
    as_json: bool

    def say(self, text: str = "") -> None:
        """Human output (stdout); silent in --json mode."""
        if not self.as_json:
            print(text, file=self.out)

    def progress(self, text: str) -> None:
        print(text, file=self.err, flush=True)

    def document(self, data: object) -> None:
        print(json.dumps(data, indent=2, sort_keys=False, default=str), file=self.out)


# --- settings ---------------------------------------------------------------------------


def read_env_file(path: str) -> dict[str, str]:
    """``KEY=VALUE`` and ``export KEY=value`` lines (``python -m emulators --env-file`` writes the
    first, its console the second); ``#`` comments and blank lines are skipped; values may be quoted."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--env-file {path}: cannot read it ({exc.strerror or exc.__class__.__name__})") from None
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not name or not (name.replace("_", "a").isalnum() and not name[0].isdigit()):
            raise UsageError(f"--env-file {path}, line {number}: expected KEY=VALUE or export KEY=value")
        value = value.strip()
        if value[:1] in {"'", '"'}:
            try:
                parts = shlex.split(value)
            except ValueError:
                raise UsageError(f"--env-file {path}, line {number}: unbalanced quotes in {name}") from None
            value = parts[0] if parts else ""
        values[name] = value
    return values


def _settings_hint(message: str) -> str:
    named = next((name for name in SETTINGS if name in message), "")
    hint = (
        "Set it in the environment or in a file passed with --env-file PATH. For the local emulators, "
        "`make sandbox` writes .sandbox.env with every setting, Azurite's storage included. "
        "Every setting is in README.md#configuration."
    )
    if named and SETTINGS[named][1] not in message:
        return f"{named}: {SETTINGS[named][1]}. {hint}"
    if "storage" in message.lower():
        return (
            "Set AzureWebJobsStorage (a connection string; Azurite locally) or AzureWebJobsStorage__accountName "
            "(identity-based, in Azure). " + hint
        )
    return hint


def read_only(args: argparse.Namespace) -> bool:
    """plan, status and a cleanup dry run only read (Key Vault, Graph): they take no lease and queue
    nothing, so they need no storage setting and build no storage client. ``publisher`` writes one
    property with the operator's own sign-in and takes no lease either."""
    return args.command in {"plan", "status", "publisher"} or (args.command == "cleanup" and not args.apply)


def _services(args: argparse.Namespace) -> Services:
    storage = not read_only(args)
    if args.credential == "azure-cli":
        from azure.identity import AzureCliCredential

        settings = Settings.from_env()
        svc = build_services(settings, credential=AzureCliCredential(tenant_id=settings.tenant_id), storage=storage)
        use_services(svc)
        return svc
    return services(storage=storage)


# --- commands ---------------------------------------------------------------------------


def cmd_plan(svc: Services, args: argparse.Namespace, io: Io) -> int:
    listing = list(svc.deps.vault.list_properties())
    ready = None
    if getattr(args, "readiness", False):  # one Graph GET per tenant (provisioning/readiness.py)
        ready = readiness_by_tenant(listing, svc.settings.secret_prefix, ReadinessContext.of(svc.provisioner))
    result = plan(
        listing,
        svc.deps.clock.now(),
        stuck_after=timedelta(hours=svc.settings.stuck_after_hours),
        prefix=svc.settings.secret_prefix,
        window=parse_window(svc.settings.rotation_window),
        readiness=ready,
    )
    if io.as_json:
        io.document({"dryRun": True, **result.to_json()})
        return OK
    _print_plan(result, io)
    return OK


def _print_plan(result: Plan, io: Io) -> None:
    if not result.items:
        io.say("No tenants in Key Vault yet. Provision one: python -m rotator provision tenant.json")
        return
    io.say(_window_header(result))
    io.say()
    rows = [
        (
            i.tenant,
            i.state,
            i.nylas_target,
            date(i.expires_on),
            days_left(i.expires_on, result.now),
            i.next_run,
            i.why,
            _starts(i),
        )
        for i in result.items
    ]
    io.say(table(("TENANT", "STATE", "NYLAS", "EXPIRES", "LEFT", "NEXT RUN", "WHY", "STARTS (UTC)"), rows))
    io.say()
    for i in result.items:
        io.say(f"  {i.tenant}: {i.explanation}")
    io.say()
    counts = ", ".join(f"{result.count(n)} {n.value}" for n in NextRun)
    io.say(f"{len(result.items)} tenants as of {stamp(result.now)}: {counts}. Dry run: nothing was changed.")


def _window_header(result: Plan) -> str:
    if result.window is None:
        return "Rotation window: none (ROTATION_WINDOW is empty): due tenants start when the nightly scan queues them."
    opens, closes = result.window.occurrence(result.now)
    state = "open now, closes" if opens <= result.now else f"next opens {opens:%Y-%m-%d %H:%M:%S}, closes"
    return (
        f"Rotation window: {result.window.describe()} (ROTATION_WINDOW); {state} {closes:%Y-%m-%d %H:%M:%S} UTC. "
        "Due tenants are spread over it; start times are those a scan run now would give."
    )


def _starts(item: PlanItem) -> str:
    if item.starts_at is not None:
        return f"{item.starts_at:%Y-%m-%d %H:%M:%S}"
    return "at the scan" if item.next_run in {NextRun.ROTATE, NextRun.RESUME, NextRun.REMIND} else "-"


def cmd_status(svc: Services, args: argparse.Namespace, io: Io) -> int:
    now = svc.deps.clock.now()
    if args.tenant:
        context = ReadinessContext.of(svc.provisioner)
        view = get_tenant(svc.deps.vault, svc.settings.secret_prefix, args.tenant, readiness=context)
        if io.as_json:
            io.document(view.to_json())
            return OK
        rows = [
            ("tenant", view.tenant),
            ("state", f"{view.state} (since {stamp(view.updated_on)})"),
            ("client id", view.client_id),
            ("app object id", view.app_object_id),
            ("key id", view.key_id),
            ("expires", f"{stamp(view.expires_on)} ({days_left(view.expires_on, now)})"),
            ("nylas", f"{view.nylas_target}, region {view.nylas_region}, app {view.nylas_app_id}"),
            ("key vault", f"@Microsoft.KeyVault(SecretUri={view.key_vault_secret_id})"),
        ]
        if view.audience:
            rows.insert(3, ("audience", view.audience))
        if view.nylas_credential_id:
            rows.append(("credential id", view.nylas_credential_id))
        if view.hosted_auth_url:
            rows.append(("hosted auth", view.hosted_auth_url + "&redirect_uri=<your callback>"))
        if view.replaces:
            rows.append(("replaces", view.replaces))
        if view.readiness is not None:
            rows += _readiness_rows(view.readiness)
        width = max(len(k) for k, _ in rows)
        for key, value in rows:
            io.say(f"{key.ljust(width)}  {value}")
        if view.state == "awaiting-confirmation":
            io.say()
            io.say(_paste_instructions(view.tenant, view.key_vault_secret_id))
        return OK
    views = sorted(list_tenants(svc.deps.vault, svc.settings.secret_prefix), key=lambda v: v.tenant)
    if io.as_json:
        io.document({"tenants": [v.to_json() for v in views], "count": len(views)})
        return OK
    if not views:
        io.say("No tenants in Key Vault yet. Provision one: python -m rotator provision tenant.json")
        return OK
    rows2 = [
        (
            v.tenant,
            v.state,
            stamp(v.updated_on),
            v.client_id,
            v.key_id,
            date(v.expires_on),
            days_left(v.expires_on, now),
            f"{v.nylas_target}/{v.nylas_region}"
            + (f" (replaces {v.replaces})" if v.replaces else "")
            + (f" (replaced by {v.replaced_by})" if v.replaced_by else ""),
        )
        for v in views
    ]
    io.say(table(("TENANT", "STATE", "SINCE", "CLIENT ID", "KEY ID", "EXPIRES", "LEFT", "NYLAS"), rows2))
    io.say(f"\n{len(views)} tenants.")
    return OK


def _paste_instructions(tenant: str, secret_id: str) -> str:
    return (
        "Next: read the new secret from Key Vault (it is never printed here), e.g.\n"
        f"  az keyvault secret show --id {secret_id} --query value -o tsv\n"
        "paste it in the Nylas v2 dashboard (App settings > Authentication > Office365 Auth), then run\n"
        f"  {PROG} confirm {tenant}"
    )


def _readiness_rows(readiness: Readiness) -> list[tuple[str, str]]:
    """Is the app ready for production (docs/going-to-production.md)."""
    rows = [("production", readiness.summary())]
    if readiness.error:
        return rows
    vp = readiness.verified_publisher
    publisher = f"{vp.display_name} (MPN {vp.publisher_id}, since {stamp(vp.added)})" if vp.publisher_id else "none"
    rows.append(("publisher", f"{publisher}; publisher domain {readiness.publisher_domain or '(none)'}"))
    needs = ", ".join(readiness.admin_consent_for) or "nothing"
    rows.append(("consent", f"users: {readiness.user_consent}; admin-only: {needs}"))
    rows.append(("admin consent", readiness.admin_consent_url))
    rows += [("advice", text) for text in readiness.advice]
    return rows


def _credential_kind(svc: Services, args: argparse.Namespace) -> str:
    if args.credential == "azure-cli":
        return "azure-cli"
    return "client-secret" if svc.settings.client_secret else "managed-identity"


def cmd_publisher(svc: Services, args: argparse.Namespace, io: Io) -> int:
    kind = _credential_kind(svc, args)
    try:
        # Refused before any call when it is the service's own identity (an application): only a person may.
        operator = signed_in_operator(kind, svc.graph.access_token() if kind == "azure-cli" else None)
    except BadRequest as exc:
        raise UsageError(exc.message) from None
    publisher = Publisher(svc.deps.vault, svc.deps.graph, svc.settings.secret_prefix)
    if args.action == "set":
        io.progress(f"setting the verified publisher of {args.tenant} to MPN id {args.mpn_id} …")
        result = publisher.set(args.tenant, args.mpn_id, operator)
    else:
        io.progress(f"removing the verified publisher of {args.tenant} …")
        result = publisher.unset(args.tenant, operator)
    view = get_tenant(
        svc.deps.vault, svc.settings.secret_prefix, args.tenant, readiness=ReadinessContext.of(svc.provisioner)
    )
    if io.as_json:
        io.document({**result.to_json(), "readiness": view.readiness.to_json() if view.readiness else None})
        return OK
    vp = result.publisher
    now = f"{vp.display_name} (MPN {vp.publisher_id})" if vp.publisher_id else "none"
    done = "done" if result.changed else "nothing to do, it already was"
    who = f", signed in as {result.operator}" if result.operator else ""
    io.say(f"{args.tenant}: verified publisher {args.action}: {done}; now {now} on app {result.client_id}{who}")
    if view.readiness is not None:
        for key, value in _readiness_rows(view.readiness):
            io.say(f"  {key:<14} {value}")
    return OK


def cmd_branding(svc: Services, args: argparse.Namespace, io: Io) -> int:
    if args.credential == "azure-cli":
        raise UsageError(
            "branding runs as the service identity, which owns the tenant's app (Application.ReadWrite.OwnedBy). "
            "Run it without --credential azure-cli where the service identity is available, or use "
            "PATCH /api/tenants/TENANT."
        )
    if not args.file and not args.logo:
        raise UsageError(f'{PROG} branding: give FILE.json ({{"branding": {{...}}}}), --logo PATH, or both')
    wanted: Branding | None = None
    if args.file:
        try:
            raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
        except OSError as exc:
            raise UsageError(f"{args.file}: cannot read it ({exc.strerror or exc.__class__.__name__})") from None
        wanted = parse_branding_update(parse_body(raw, "application/json", max_bytes=MAX_BRANDING_BODY_BYTES))
    if args.logo:
        try:
            image = Path(args.logo).read_bytes()
        except OSError as exc:
            raise UsageError(f"{args.logo}: cannot read it ({exc.strerror or exc.__class__.__name__})") from None
        logo = logo_from_file(image)
        wanted = replace(wanted, logo=logo) if wanted is not None else Branding(logo=logo)
    assert wanted is not None
    result = update_branding(svc.deps, svc.settings.secret_prefix, args.tenant, wanted)
    if io.as_json:
        io.document(result.to_json())
        return OK
    what = ", ".join(result.changed) if result.changed else "nothing: the app already looks so"
    io.say(f"{args.tenant}: branding updated: {what}")
    for key, value in result.to_json()["branding"].items():  # type: ignore[attr-defined]
        io.say(f"  {key:<20} {value or '-'}")
    return OK


def cmd_provision(svc: Services, args: argparse.Namespace, io: Io) -> int:
    if args.credential == "azure-cli":
        raise UsageError(
            "provision must run as the service identity: an app created with your own sign-in is owned by you, "
            "and the service (Application.ReadWrite.OwnedBy) could never rotate it. Use POST /api/tenants, or run "
            "without --credential azure-cli where the service identity is available."
        )
    path = args.file
    try:
        raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror or exc.__class__.__name__})") from None
    data = parse_body(raw, "application/json")
    request = parse_request(
        data,
        default_lifetime_days=svc.settings.default_lifetime_days,
        default_rotate_before_days=svc.settings.default_rotate_before_days,
    )
    io.progress(f"provisioning {request.tenant} ({request.nylas.target.value}) …")
    started = time.monotonic()
    result = svc.provisioner.provision(request)
    io.progress(f"provisioning {request.tenant}: done in {time.monotonic() - started:.1f} s")
    view = result.view
    if io.as_json:
        io.document({"created": result.created, **view.to_json()})
        return OK
    io.say(f"{view.tenant}: {'provisioned' if result.created else 'already provisioned, nothing changed'}")
    for key, value in (
        ("client id", view.client_id),
        ("app object id", view.app_object_id),
        ("key id", view.key_id),
        ("expires", stamp(view.expires_on)),
        ("state", view.state),
        ("nylas", f"{view.nylas_target}, region {view.nylas_region}, app {view.nylas_app_id}"),
        ("redirect uri", view.redirect_uri),
        ("admin consent", view.admin_consent_url),
        ("key vault", f"@Microsoft.KeyVault(SecretUri={view.key_vault_secret_id})"),
    ):
        if value:
            io.say(f"  {key:<14} {value}")
    for warning in view.warnings:
        io.say(f"  warning: {warning}")
    if view.state == "awaiting-confirmation":
        io.say()
        io.say(_paste_instructions(view.tenant, view.key_vault_secret_id))
    return OK


def _outcome_json(outcome: Outcome) -> dict[str, object]:
    return {
        "tenant": outcome.tenant,
        "result": outcome.result.value,
        "keyId": outcome.key_id,
        "previousKeyId": outcome.previous_key_id,
        "expiresOn": outcome.expires_on.isoformat() if outcome.expires_on else None,
        "message": outcome.message,
    }


FAILING_RESULTS = {Result.ROLLED_BACK, Result.BUSY, Result.REFUSED, Result.RETIRING, Result.NYLAS_REFUSED}


def _describe(outcome: Outcome) -> str:
    r = outcome.result
    if r is Result.ROTATED:
        revoked = f", revoked {outcome.previous_key_id}" if outcome.previous_key_id else ""
        return f"rotated: key {outcome.key_id} is current (expires {date(outcome.expires_on)}){revoked}"
    if r is Result.AWAITING_CONFIRMATION:
        return (
            f"awaiting confirmation: key {outcome.key_id} is stored and verified; the old key "
            f"{outcome.previous_key_id or '-'} stays live until you confirm"
        )
    if r is Result.NOT_DUE:
        return f"not due: key {outcome.key_id} expires {date(outcome.expires_on)}"
    if r is Result.STALE_EVENT:
        return "stale: the record moved on since the scan; nothing to do"
    if r is Result.BUSY:
        return "busy: another run holds the tenant's lease; try again in a minute"
    if r is Result.NYLAS_REFUSED:
        return (
            f"Nylas refused the push, nothing revoked: {outcome.message}; keys {outcome.key_id} (new) and "
            f"{outcome.previous_key_id or '-'} (previous) both stay valid ({RUNBOOK}#nylas-refused)"
        )
    if r is Result.REFUSED:
        return f"refused, nothing changed: {outcome.message} ({RUNBOOK}#secret-limit)"
    if r is Result.RETIRING:
        return f"being retired: never rotated again; finish with `{PROG} retire {outcome.tenant} --confirm …`"
    return f"rolled back: {outcome.message}; key {outcome.key_id} stays live ({RUNBOOK}#rotation-failed)"


def cmd_rotate(svc: Services, args: argparse.Namespace, io: Io) -> int:
    if args.due == bool(args.tenant):
        raise UsageError(f"{PROG} rotate: give either a TENANT or --due")
    if args.tenant:
        get_tenant(svc.deps.vault, svc.settings.secret_prefix, args.tenant)  # a clear error before any lease
        io.progress(f"rotating {args.tenant} (forced) …")
        outcome = svc.engine.rotate(args.tenant, force=True, reason="operator")
        code = FAILED if outcome.result in FAILING_RESULTS else OK
        if io.as_json:
            io.document(_outcome_json(outcome))
        else:
            io.say(f"{args.tenant}: {_describe(outcome)}")
            if outcome.result is Result.AWAITING_CONFIRMATION:
                view = get_tenant(svc.deps.vault, svc.settings.secret_prefix, args.tenant)
                io.say()
                io.say(_paste_instructions(args.tenant, view.key_vault_secret_id))
        return code
    report = scan(
        svc.deps.vault.list_properties(),
        svc.deps.clock.now(),
        stuck_after=timedelta(hours=svc.settings.stuck_after_hours),
        prefix=svc.settings.secret_prefix,
    )
    io.progress(report.summary())
    results: list[dict[str, object]] = []
    code = OK
    total = len(report.items)
    interval = interval_seconds(svc.settings)
    last_paced: float | None = None
    for n, item in enumerate(report.items, 1):
        if item.paced:
            # Graph's 60 writes a minute to personal-account apps (rotation/pacing.py), here in-process.
            now = svc.deps.clock.now().timestamp()
            if last_paced is not None and now - last_paced < interval:
                svc.deps.sleep(interval - (now - last_paced))
            last_paced = svc.deps.clock.now().timestamp()
        io.progress(f"[{n}/{total}] {item.tenant} ({item.reason}) …")
        started = time.monotonic()
        try:
            outcome = svc.engine.rotate(item.tenant, seen_version=item.version, reason=item.reason)
        except ServiceError as exc:
            code = FAILED
            io.progress(f"[{n}/{total}] {item.tenant}: failed: {exc.message}")
            results.append({"tenant": item.tenant, "reason": item.reason, "result": "failed", "error": exc.message})
            continue
        if outcome.result in FAILING_RESULTS:
            code = FAILED
        io.progress(f"[{n}/{total}] {item.tenant}: {outcome.result.value} ({time.monotonic() - started:.1f} s)")
        results.append({"reason": item.reason, **_outcome_json(outcome)})
    if io.as_json:
        io.document({"scan": report.counts(), "results": results})
        return code
    if not results:
        io.say("Nothing is due, stuck or awaiting confirmation.")
        return code
    rows = [(r["tenant"], r["reason"], r["result"], r.get("keyId"), r.get("previousKeyId")) for r in results]
    io.say(table(("TENANT", "REASON", "RESULT", "KEY ID", "PREVIOUS KEY ID"), rows))
    return code


def cmd_confirm(svc: Services, args: argparse.Namespace, io: Io) -> int:
    get_tenant(svc.deps.vault, svc.settings.secret_prefix, args.tenant)
    outcome = svc.engine.confirm(args.tenant)
    if io.as_json:
        io.document(_outcome_json(outcome))
    else:
        io.say(f"{args.tenant}: confirmed; {_describe(outcome)}")
    return FAILED if outcome.result in FAILING_RESULTS else OK


def cmd_cleanup(svc: Services, args: argparse.Namespace, io: Io) -> int:
    cleanup = Cleanup(
        vault=svc.deps.vault,
        graph=svc.deps.graph,
        directory=svc.graph,
        leases=svc.deps.leases,
        prefix=svc.settings.secret_prefix,
        grace=timedelta(minutes=svc.settings.orphan_grace_minutes),
    )
    io.progress("cleanup: " + ("removing" if args.apply else "looking for (dry run)") + " orphaned credentials …")
    report = cleanup.run(svc.deps.clock.now(), apply=args.apply, include_unrecorded_apps=args.include_unrecorded_apps)
    if io.as_json:
        io.document(report.to_json())
    else:
        _print_cleanup(report, io)
    return FAILED if report.failed else OK


def _print_cleanup(report: CleanupReport, io: Io) -> None:
    creds = [c for c in report.credentials if c.key_id]
    if creds:
        rows = [
            (c.tenant, c.client_id, c.key_id, c.display_name, c.hint + "…", stamp(c.start), c.disposition)
            for c in creds
        ]
        io.say(table(("TENANT", "CLIENT ID", "KEY ID", "NAME", "HINT", "CREATED", "ACTION"), rows))
    else:
        io.say(f"No orphaned credentials of ours on {report.tenants} tenants' apps.")
    for c in report.credentials:
        if c.disposition is Disposition.BUSY:
            io.say(f"  {c.tenant}: busy, {c.error}")
    if report.unrecorded_apps:
        io.say()
        io.say("Apps tagged nylas-entra-rotator with no Key Vault record (never deleted by cleanup):")
        rows2 = [
            (a.tenant, a.app_id, a.object_id, a.display_name, a.credentials_of_ours) for a in report.unrecorded_apps
        ]
        io.say(table(("TENANT", "CLIENT ID", "OBJECT ID", "NAME", "OURS"), rows2, indent="  "))
        io.say(
            "  Re-run the tenant's provisioning to finish it, or delete the app (az ad app delete --id CLIENT_ID). "
            "If its Key Vault secret was deleted by mistake, recover it first (az keyvault secret recover)."
        )
    for error in report.errors:
        io.say(f"  error: {error}")
    io.say()
    grace = f"older than {report.grace_minutes} min (ORPHAN_GRACE_MINUTES)"
    if report.applied:
        io.say(
            f"Removed {report.count(Disposition.REMOVED)} orphaned credentials {grace}; "
            f"kept {report.count(Disposition.TOO_YOUNG)} younger ones, skipped {report.count(Disposition.SKIPPED)}."
        )
    else:
        would = report.count(Disposition.WOULD_REMOVE)
        then = f": run `{PROG} cleanup --apply`" if would else ""
        io.say(f"Dry run: nothing removed. {would} credentials {grace} would be removed{then}.")
    if report.count(Disposition.SKIPPED):
        io.say("Credentials on apps without a record are only removed with --apply --include-unrecorded-apps.")


# --- the parser -------------------------------------------------------------------------

Command = Callable[[Services, argparse.Namespace, Io], int]


def cmd_retire(svc: Services, args: argparse.Namespace, io: Io) -> int:
    result = svc.retirement.retire(args.tenant, confirm=args.confirm or "", delete_app=args.delete_app)
    if io.as_json:
        io.document(result.to_json())
        return OK
    if result.already_retired:
        io.say(f"{args.tenant}: already retired (its Key Vault secret is soft-deleted). Nothing to do.")
        return OK
    io.say(f"{args.tenant}: retired.")
    io.say(f"  revoked credentials of ours: {', '.join(result.revoked_key_ids) or '(none left)'}")
    io.say(f"  Nylas connector credential deleted: {'yes' if result.nylas_credential_deleted else 'no'}")
    io.say(f"  app registration deleted: {'yes' if result.app_deleted else 'no (add --delete-app)'}")
    io.say(f"  Key Vault secrets soft-deleted: {', '.join(result.secrets_deleted) or '(none)'}")
    for note in result.notes:
        io.say(f"  note: {note}")
    return OK


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="one JSON document on stdout")
    common.add_argument(
        "--env-file",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="load settings from KEY=VALUE / export KEY=value lines first (they win over the environment)",
    )
    parser = _Parser(
        prog=PROG,
        description="Operate the Nylas Entra secret rotator: see what the next run will do, provision, rotate, "
        "confirm manual updates and clean up. Settings come from the environment (README.md#configuration).",
        epilog=f"Exit codes: 0 ok, 1 failure, 2 bad usage or settings. Alerts and what to do: {RUNBOOK}.",
        parents=[common],
    )
    parser.add_argument(
        "--credential",
        choices=("service", "azure-cli"),
        default="service",
        help="service (default): the service's own identity (managed identity in Azure, the app secret locally); "
        "azure-cli: your `az login` (read-only use: plan, status)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log INFO lines of the service to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("plan", parents=[common], help="dry run: what the next nightly run would do, and why")
    p.add_argument(
        "--readiness", action="store_true", help="also say which apps are not ready for production (a Graph read each)"
    )
    p.set_defaults(run=cmd_plan)

    p = sub.add_parser("status", parents=[common], help="every tenant (or one): state, key id, expiry")
    p.add_argument("tenant", nargs="?", metavar="TENANT")
    p.set_defaults(run=cmd_status)

    p = sub.add_parser(
        "provision", parents=[common], help="provision a tenant from a JSON file (POST /api/tenants body)"
    )
    p.add_argument("file", metavar="FILE.json", help="the request body; - reads stdin")
    p.set_defaults(run=cmd_provision)

    p = sub.add_parser("rotate", parents=[common], help="rotate one tenant now (forced), or every due one (--due)")
    p.add_argument("tenant", nargs="?", metavar="TENANT")
    p.add_argument("--due", action="store_true", help="scan, then rotate each due, stuck or awaiting tenant here")
    p.set_defaults(run=cmd_rotate)

    p = sub.add_parser("confirm", parents=[common], help="the new secret is pasted in the manual Nylas target")
    p.add_argument("tenant", metavar="TENANT")
    p.set_defaults(run=cmd_confirm)

    p = sub.add_parser(
        "retire", parents=[common], help="retire a tenant: revoke our secrets, delete its Nylas credential and records"
    )
    p.add_argument("tenant", metavar="TENANT")
    p.add_argument(
        "--confirm", metavar="TENANT", help="the tenant's name again: retiring revokes the secret Nylas uses"
    )
    p.add_argument(
        "--delete-app", action="store_true", help="also delete the app registration (Entra keeps it 30 days)"
    )
    p.set_defaults(run=cmd_retire)

    p = sub.add_parser("cleanup", parents=[common], help="find (or --apply: remove) orphaned credentials of ours")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="only report (the default)")
    mode.add_argument("--apply", action="store_true", help="remove them, under each tenant's lease")
    p.add_argument(
        "--include-unrecorded-apps",
        action="store_true",
        help="also remove our credentials on tagged apps that have no Key Vault record",
    )
    p.set_defaults(run=cmd_cleanup)

    # Issue 14: going to production (docs/going-to-production.md).
    p = sub.add_parser(
        "publisher",
        parents=[common],
        help="set or unset the verified publisher (Partner One / MPN id) of a tenant's app, as yourself",
        description="Microsoft Graph takes this from a signed-in person only (delegated Application.ReadWrite.All, "
        "an Entra role Application Administrator, Cloud Application Administrator or Global Administrator): "
        "run it with --credential azure-cli after az login. See docs/going-to-production.md.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    actions.required = True
    for action, text in (("set", "set the verified publisher"), ("unset", "remove the verified publisher")):
        a = actions.add_parser(action, parents=[common], help=text)
        a.add_argument("tenant", metavar="TENANT")
        if action == "set":
            a.add_argument("--mpn-id", required=True, metavar="ID", help="your Partner One (MPN) id, PartnerGlobal")
        a.add_argument(
            "--credential", choices=("service", "azure-cli"), default=argparse.SUPPRESS, help="as before the command"
        )
    p.set_defaults(run=cmd_publisher)

    p = sub.add_parser(
        "branding", parents=[common], help="set a tenant's app branding: info URLs and logo (PATCH /api/tenants/TENANT)"
    )
    p.add_argument("tenant", metavar="TENANT")
    p.add_argument("file", nargs="?", metavar="FILE.json", help='{"branding": {...}} as PATCH takes it; - reads stdin')
    p.add_argument("--logo", metavar="PATH", help="a PNG, JPEG or BMP image, at most 100 KB (215x215 px looks best)")
    p.set_defaults(run=cmd_branding)
    return parser


# --- the entry point --------------------------------------------------------------------

_HANDLER: logging.Handler | None = None
NOISY = ("azure", "msal", "httpx", "httpcore", "urllib3", "kiota_http", "kiota_abstractions", "msgraph")


def configure_logging() -> None:
    """For a shell run: WARNING and above on stderr, the SDKs' chatter off."""
    global _HANDLER
    _HANDLER = logging.StreamHandler(sys.stderr)
    _HANDLER.setLevel(logging.WARNING)
    _HANDLER.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(_HANDLER)
    root.setLevel(logging.INFO)
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None, *, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    as_json = False
    try:
        try:
            args = build_parser().parse_args(list(argv) if argv is not None else None)
        except SystemExit as exc:  # --help
            return int(exc.code or 0)
        as_json = bool(getattr(args, "json", False))
        if args.verbose and _HANDLER is not None:
            _HANDLER.setLevel(logging.INFO)
        env_file = getattr(args, "env_file", None)
        if env_file:
            import os

            os.environ.update(read_env_file(env_file))
        io = Io(out, err, as_json)
        svc = _services(args)
        run: Command = args.run
        return run(svc, args, io)
    except UsageError as exc:
        return _fail(err, out, as_json, USAGE, "usage", str(exc))
    except SettingsError as exc:
        return _fail(err, out, as_json, USAGE, "settings", str(exc), _settings_hint(str(exc)))
    except BadRequest as exc:
        where = f" (field {exc.field})" if exc.field else ""
        return _fail(err, out, as_json, USAGE, exc.code, exc.message + where, "Fix the request file and run again.")
    except ServiceError as exc:
        return _fail(err, out, as_json, FAILED, exc.code, exc.message, _hint(exc))
    except KeyboardInterrupt:
        return _fail(err, out, as_json, FAILED, "interrupted", "interrupted; every step resumes on the next run")
    except Exception as exc:  # an SDK error we do not translate: name it, keep the exit code meaningful
        log.debug("unexpected error", exc_info=True)
        first = (str(exc).splitlines() or [""])[0][:200]
        return _fail(err, out, as_json, FAILED, "unexpected", f"{exc.__class__.__name__}: {first}", "Run with -v.")


def _hint(exc: ServiceError) -> str:
    if isinstance(exc, TenantNotFound):
        return f"List the tenants with `{PROG} status`."
    if isinstance(exc, NothingToConfirm):
        return f"See where it stands with `{PROG} status TENANT`: only awaiting-confirmation can be confirmed."
    if isinstance(exc, LeaseBusy):
        return "Another run is rotating this tenant; try again in a minute."
    if isinstance(exc, NotOwned):
        return "Add the service's identity as an app owner: docs/deploy.md#adopting-an-app-registration-made-by-hand"
    if isinstance(exc, DependencyError):
        if exc.dependency == "entra-id" and "from this sign-in" in exc.message:  # publisher: your own az login
            return "Sign in as yourself with az login (with MFA), then run the command again."
        if exc.dependency == "entra-id":
            return (
                "The CLI signs in as the service: locally AZURE_CLIENT_ID/AZURE_CLIENT_SECRET, in Azure the "
                "managed identity (or --credential azure-cli for plan and status)."
            )
        if exc.transient:
            return f"{exc.dependency} is unavailable or throttling; run the same command again (every step resumes)."
        return f"{exc.dependency} refused the call; see {RUNBOOK} for what to check."
    return f"See {RUNBOOK}."


def _fail(err: IO[str], out: IO[str], as_json: bool, code: int, kind: str, message: str, hint: str = "") -> int:
    print(f"error: {message}", file=err)
    if hint:
        print(f"hint: {hint}", file=err)
    if as_json:
        body: dict[str, Any] = {"error": {"code": kind, "message": message, "hint": hint}, "exitCode": code}
        print(json.dumps(body, indent=2), file=out)
    return code
