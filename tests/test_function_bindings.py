"""function_app.py registers blueprints only, and every function's bindings are the ones the
platform needs: trigger type, schedule setting, routes and methods, auth levels, queue names
and connections, the retry policy; host.json's queue settings match what the code assumes."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _plain(value: Any) -> Any:
    """Binding dicts hold enums (direction, methods, auth level): reduce them to their values."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return getattr(value, "value", value)


@pytest.fixture(scope="module")
def functions() -> dict[str, dict[str, Any]]:
    # get_functions() builds the index once; a second call raises (duplicate names).
    import function_app

    out: dict[str, dict[str, Any]] = {}
    for fn in function_app.app.get_functions():
        name = fn.get_function_name()
        out[name] = {
            "trigger": _plain(fn.get_trigger().get_dict_repr()),
            "bindings": [_plain(b.get_dict_repr()) for b in fn.get_bindings()],
            "retry": fn.get_settings_dict("retry_policy"),
            "user_function": fn.get_user_function(),
            "json": json.loads(fn.get_function_json()),
        }
    return out


HTTP_ROUTES = {
    "provision_tenant": ("tenants", ["POST"]),
    "list_tenants": ("tenants", ["GET"]),
    "get_tenant": ("tenants/{tenant}", ["GET"]),
    "update_tenant": ("tenants/{tenant}", ["PATCH"]),
    "retire_tenant": ("tenants/{tenant}", ["DELETE"]),
    "rotate_tenant": ("tenants/{tenant}/rotate", ["POST"]),
    "confirm_rotation": ("tenants/{tenant}/rotation/confirm", ["POST"]),
}


def test_function_app_registers_exactly_the_expected_functions(functions):
    others = {"nightly_scan", "rotate_from_queue", "rotation_poison", "on_key_vault_event"}
    assert set(functions) == {*HTTP_ROUTES, *others}


def test_function_app_module_only_registers_blueprints():
    tree = ast.parse((ROOT / "function_app.py").read_text())
    defs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    assert defs == [], "function_app.py defines no functions or classes: logic lives in blueprints/"
    calls = [n.value for n in tree.body if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)]
    # Beside the registrations, one call: telemetry set up before anything runs (clients/azure_monitor.py).
    assert calls and all(ast.unparse(c.func) in ("app.register_functions", "azure_monitor.setup") for c in calls), (
        "function_app.py registers blueprints and sets up telemetry, nothing else"
    )


@pytest.mark.parametrize("name", sorted(HTTP_ROUTES))
def test_http_functions_have_their_route_method_and_function_auth_level(functions, name):
    route, methods = HTTP_ROUTES[name]
    trigger = functions[name]["trigger"]
    assert trigger["type"] == "httpTrigger"
    assert trigger["route"] == route
    assert trigger["methods"] == methods
    assert trigger["authLevel"] == "function"
    assert {"type": "http", "name": "$return", "direction": 1} in functions[name]["bindings"]


def test_timer_reads_its_schedule_from_an_app_setting_uses_the_monitor_and_retries(functions):
    scan = functions["nightly_scan"]
    assert scan["trigger"] == {
        "direction": 0,
        "type": "timerTrigger",
        "name": "timer",
        "schedule": "%ROTATION_SCHEDULE%",
        "runOnStartup": False,
        "useMonitor": True,
    }
    retry = scan["retry"]
    assert retry["strategy"] == "exponential_backoff"
    assert int(retry["max_retry_count"]) >= 1
    assert retry["minimum_interval"] and retry["maximum_interval"]


def test_default_schedule_is_daily_at_two_utc():
    from core.settings import SETTINGS, Settings

    assert SETTINGS["ROTATION_SCHEDULE"][0] == "0 0 2 * * *"
    settings = Settings.from_env({"AZURE_TENANT_ID": "t", "KEY_VAULT_URL": "https://kv.vault.azure.net/"})
    assert settings.rotation_schedule == "0 0 2 * * *"


def test_queue_functions_read_the_rotation_queue_and_its_poison_queue_from_host_storage(functions):
    work, poison = functions["rotate_from_queue"]["trigger"], functions["rotation_poison"]["trigger"]
    assert (work["type"], work["queueName"], work["connection"]) == (
        "queueTrigger",
        "%ROTATION_QUEUE%",
        "AzureWebJobsStorage",
    )
    # The host moves a message that failed maxDequeueCount times to "<queue>-poison".
    assert (poison["type"], poison["queueName"], poison["connection"]) == (
        "queueTrigger",
        "%ROTATION_QUEUE%-poison",
        "AzureWebJobsStorage",
    )
    assert functions["rotate_from_queue"]["retry"] is None  # queues retry by dequeue count, not a policy


def test_event_grid_function_is_on_key_vault_event_with_an_event_grid_trigger(functions):
    trigger = functions["on_key_vault_event"]["trigger"]
    assert trigger == {"direction": 0, "type": "eventGridTrigger", "name": "event"}


def test_every_trigger_argument_is_annotated_with_a_type_the_worker_accepts(functions):
    import typing

    import azure.functions as func

    expected = {
        "httpTrigger": func.HttpRequest,
        "timerTrigger": func.TimerRequest,
        "queueTrigger": func.QueueMessage,
        "eventGridTrigger": func.EventGridEvent,
    }
    for name, fn in functions.items():
        trigger = fn["trigger"]
        hints = typing.get_type_hints(fn["user_function"])
        # The worker checks the annotation is a plain class (a Union is refused at indexing).
        assert hints[trigger["name"]] is expected[trigger["type"]], name


def test_host_json_sets_the_queue_retry_shape_the_blueprint_documents():
    from blueprints.queue import MAX_DEQUEUE_COUNT

    host = json.loads((ROOT / "host.json").read_text())
    queues = host["extensions"]["queues"]
    assert queues["maxDequeueCount"] == MAX_DEQUEUE_COUNT == 5
    assert queues["visibilityTimeout"] == "00:01:00"
    assert queues["batchSize"] == 4
    assert queues["messageEncoding"] == "base64"  # what StorageRotationQueue writes
    assert host["extensions"]["http"]["routePrefix"] == "api"
    # One rotation waits out Entra's propagation (VERIFY_BUDGET_SECONDS, 300 by default) in one call.
    h, m, s = (int(x) for x in host["functionTimeout"].split(":"))
    assert h * 3600 + m * 60 + s >= 2 * 300


def test_sample_settings_list_every_setting_the_code_reads():
    from core.settings import SETTINGS

    values = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    assert set(SETTINGS) <= set(values)
    assert values["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"
