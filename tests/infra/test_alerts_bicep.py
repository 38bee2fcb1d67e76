"""The alert rules and the workbook query only what the app really emits (no Azure needed).

A rule that queries a metric the app never sends, or a table it never writes, is worse than
no rule: it stays green forever. This gate reads the Bicep as pycep-parser parses it (like
test_infra_bicep.py) and checks, for every scheduled query rule, metric alert and workbook
query under infra/:

1. Metric names. Every name a query filters on (``name == "..."``, ``name in (...)``, also
   inside ``sumif``/``maxif``) and every string literal that looks like one of ours
   (``rotator.…``) is in ``core.telemetry.METRIC_NAMES``; no query matches names loosely
   (``has``, ``startswith``…); every query names at least one metric.
2. Tables. Every table a query reads (the source of each statement, ``let``, ``union``,
   ``join``, ``lookup``, plus any known Application Insights or Log Analytics table name
   anywhere in it) is one the app emits. Only ``customMetrics`` is: every rule and the
   workbook read the OpenTelemetry metrics, which azure-monitor-opentelemetry writes there.
   The app's logs (``traces``) and the Functions host's ``requests``/``exceptions`` exist
   too, but nothing here needs them, so a query that reads them is a mistake until someone
   adds it here with a reason. Workspace names (``AppMetrics``) are refused: the rules are
   scoped to the Application Insights component, where only the classic names apply.
3. Exactly the four rules exist, each enabled, scoped to the Application Insights component
   and notifying the action group declared beside it; their windows, frequencies and
   ``ago()`` spans are within what Azure Monitor accepts and what the query needs.
4. The dead-man rule fires on an empty table. Shape: its last ``summarize`` has no ``by``
   (Kusto returns exactly one row then, even from no input), and the rule fires on a row
   count above zero with no dimensions. Behaviour: the query is run by a small model of the
   KQL it uses (``where``, ``summarize`` without ``by``, ``extend``, ``project``; Kusto's null
   semantics; aggregate defaults as documented: ``sum``/``sumif``/``count`` give 0, ``max`` and
   the rest null) on an empty ``customMetrics``, on a healthy night, on failed scans only,
   on a stale success, and on the gauge alone. The model refuses any operator or function it
   does not know, so a changed query cannot pass by being misread.

Each checker returns its findings, and the planted-bug tests at the end feed it a broken
query to prove it can fail.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.telemetry import FAILED_OUTCOMES, METRIC_NAMES
from tests.infra.test_infra_bicep import ROOT, Tree, _body, _resolve, _trees

SCHEDULED_QUERY_RULE = "Microsoft.Insights/scheduledQueryRules"
METRIC_ALERT = "Microsoft.Insights/metricAlerts"
ACTION_GROUP = "Microsoft.Insights/actionGroups"
WORKBOOK = "Microsoft.Insights/workbooks"
COMPONENT = "Microsoft.Insights/components"

# The tables the app emits that a rule or the workbook may read (see the module docstring).
APP_TABLES = frozenset({"customMetrics"})

# Table names a query might reach for by mistake: Application Insights' classic names and
# their workspace equivalents, and common Log Analytics tables. Any of them in a query (as a
# word, outside string literals) must be in APP_TABLES.
KNOWN_TABLES = frozenset(
    {
        "availabilityResults",
        "browserTimings",
        "customEvents",
        "customMetrics",
        "dependencies",
        "exceptions",
        "pageViews",
        "performanceCounters",
        "requests",
        "traces",
        "AppAvailabilityResults",
        "AppBrowserTimings",
        "AppDependencies",
        "AppEvents",
        "AppExceptions",
        "AppMetrics",
        "AppPageViews",
        "AppPerformanceCounters",
        "AppRequests",
        "AppTraces",
        "AzureActivity",
        "AzureDiagnostics",
        "AzureMetrics",
        "FunctionAppLogs",
        "Heartbeat",
        "InsightsMetrics",
        "Usage",
    }
)

# The four rules, by Bicep symbol (infra/modules/alerts.bicep).
EXPECTED_RULES = {"rotationFailed", "lowDaysLeft", "noSuccessfulScan", "poisonMessage"}
DEAD_MAN_RULE = "noSuccessfulScan"

# windowSize values Azure Monitor accepts for log search alert rules, in minutes (its own error
# text for an unsupported one, quoted in Azure/azure-rest-api-specs#21258; 1 minute is allowed
# with a 1-minute frequency).
ALLOWED_WINDOW_MINUTES = frozenset({1, 5, 10, 15, 30, 45, 60, 120, 180, 240, 300, 360, 1440, 2880})


# --- reading the Bicep ------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    file: str
    symbol: str
    type: str
    tree: Tree
    body: Tree

    @property
    def properties(self) -> Tree:
        properties = self.body["properties"]
        assert isinstance(properties, dict)
        return properties

    @property
    def conditions(self) -> list[Tree]:
        criteria = self.properties["criteria"]
        conditions = criteria.get("allOf") or criteria.get("allof") or []
        assert isinstance(conditions, list) and conditions, f"{self.symbol}: no criteria.allOf"
        return conditions

    def queries(self) -> list[str]:
        if self.type != SCHEDULED_QUERY_RULE:
            return []
        found = []
        for condition in self.conditions:
            query = _resolve(self.tree, condition["query"])
            assert isinstance(query, str), f"{self.symbol}: query is not a literal string: {query!r}"
            found.append(query)
        return found


def _rules() -> list[Rule]:
    rules = []
    for rel, tree in _trees().items():
        for symbol, resource in tree.get("resources", {}).items():
            if resource["type"] in {SCHEDULED_QUERY_RULE, METRIC_ALERT} and not resource["existing"]:
                rules.append(Rule(rel, symbol, resource["type"], tree, _body(resource)))
    return rules


def _rule(symbol: str) -> Rule:
    (rule,) = [r for r in _rules() if r.symbol == symbol]
    return rule


def _deep_resolve(tree: Tree, value: Any, seen: frozenset[str] = frozenset()) -> Any:
    """Replace every string that names a variable of the file by the variable's value, all the
    way down (the workbook's content is a variable holding variables)."""
    if isinstance(value, str):
        variables = tree.get("variables", {})
        if value in variables and value not in seen:
            return _deep_resolve(tree, variables[value]["value"], seen | {value})
        return value
    if isinstance(value, dict):
        return {key: _deep_resolve(tree, item, seen) for key, item in value.items()}
    if isinstance(value, list):
        return [_deep_resolve(tree, item, seen) for item in value]
    return value


def _queries_in(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "query" and isinstance(item, str):
                yield item
            else:
                yield from _queries_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _queries_in(item)


def _workbook_queries() -> dict[str, list[str]]:
    """Workbook symbol -> the KQL of every query item in its serializedData."""
    found: dict[str, list[str]] = {}
    for rel, tree in _trees().items():
        for symbol, resource in tree.get("resources", {}).items():
            if resource["type"] != WORKBOOK or resource["existing"]:
                continue
            data = _body(resource)["properties"]["serializedData"]
            # serializedData: string(<object>), so the Bicep (not a JSON blob) holds the queries.
            assert isinstance(data, dict) and data.get("function", {}).get("type") == "string", (
                f"{rel}:{symbol}: build serializedData with string(<object>) so its queries can be read"
            )
            content = _deep_resolve(tree, data["function"]["parameters"]["value_to_convert"])
            found[f"{rel}:{symbol}"] = list(_queries_in(content))
    return found


def _all_queries() -> list[tuple[str, str]]:
    queries = [(f"{r.file}:{r.symbol}", q) for r in _rules() for q in r.queries()]
    queries += [(f"{where}#{i}", q) for where, qs in _workbook_queries().items() for i, q in enumerate(qs)]
    return queries


# --- checkers: each returns its findings (empty: fine) --------------------------------------------

_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'')
_COMMENT = re.compile(r"//[^\n]*")
_NAME_EQUALS = re.compile(r"\bname\s*(?:==|=~)\s*(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')")
_NAME_IN = re.compile(r"\bname\s+in~?\s*\(([^)]*)\)")
_NAME_LOOSE = re.compile(r"\bname\s+(?:!?has\w*|!?contains\w*|!?startswith\w*|!?endswith\w*|matches\s+regex)\b", re.I)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _literals(text: str) -> list[str]:
    return [match.group(0)[1:-1] for match in _STRING.finditer(text)]


def _without_strings(query: str) -> str:
    return _STRING.sub('""', _COMMENT.sub("", query))


def metric_names(query: str) -> set[str]:
    """The metric names a query filters on."""
    names = {_literals(match.group(1))[0] for match in _NAME_EQUALS.finditer(query)}
    for match in _NAME_IN.finditer(query):
        names.update(_literals(match.group(1)))
    return names


def metric_findings(query: str) -> list[str]:
    findings = []
    named = metric_names(query)
    if not named:
        findings.append('names no metric (`name == "..."` or `name in (...)`)')
    for name in sorted(named - METRIC_NAMES):
        findings.append(f"filters on metric {name!r}, which core.telemetry does not define")
    for literal in sorted({lit for lit in _literals(query) if lit.startswith("rotator.")} - METRIC_NAMES):
        findings.append(f"mentions {literal!r}, which is not a metric name in core.telemetry")
    if _NAME_LOOSE.search(_without_strings(query)):
        findings.append("matches metric names loosely (has/contains/startswith...): name them exactly")
    return findings


def table_sources(query: str) -> set[str]:
    """The tables a query reads: each statement's source, and union/join/lookup operands."""
    text = _without_strings(query)
    bound: set[str] = set()
    sources: set[str] = set()
    for statement in _split_top(text, ";"):
        statement = statement.strip()
        let = re.match(r"let\s+([A-Za-z_]\w*)\s*=\s*(.*)", statement, re.S)
        if let:
            bound.add(let.group(1))
            statement = let.group(2).strip()
        first = _split_top(statement, "|")[0].strip() if statement else ""
        if re.fullmatch(r"[A-Za-z_]\w*", first):
            sources.add(first)
        elif first.startswith("union"):
            sources.update(_union_operands(first))
    for stage in (s.strip() for s in _split_top(text, "|")):
        if stage.startswith("union"):
            sources.update(_union_operands(stage))
        joined = re.match(r"(?:join|lookup)\b(?:\s+[\w.]+\s*=\s*\w+)*\s*(\(?)\s*([A-Za-z_]\w*)", stage)
        if joined:
            sources.add(joined.group(2))
    return sources - bound - {"print", "range", "datatable"}


def _union_operands(stage: str) -> set[str]:
    rest = re.sub(r"^union\b(?:\s+[\w.]+\s*=\s*\w+)*", "", stage).strip()
    operands = set()
    for part in _split_top(rest, ","):
        match = re.match(r"\(?\s*([A-Za-z_]\w*)", part.strip())
        if match:
            operands.add(match.group(1))
    return operands


def table_findings(query: str) -> list[str]:
    findings = []
    sources = table_sources(query)
    if not sources:
        findings.append("reads no table")
    words = set(_IDENTIFIER.findall(_without_strings(query)))
    for table in sorted((sources | (words & KNOWN_TABLES)) - APP_TABLES):
        findings.append(f"reads table {table!r}, which the app does not emit (allowed: {sorted(APP_TABLES)})")
    return findings


def _split_top(text: str, separator: str) -> list[str]:
    """Split on `separator` outside brackets and string literals."""
    parts, depth, quote, start = [], 0, "", 0
    i = 0
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == separator and depth == 0:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def _duration(iso: str) -> timedelta:
    match = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?", iso)
    assert match and iso not in {"P", "PT"}, f"not an ISO 8601 duration this test reads: {iso!r}"
    days, hours, minutes = (int(part or 0) for part in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes)


_AGO = re.compile(r"\bago\(\s*(\d+)\s*([dhm])\s*\)")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def schedule_findings(rule: Rule) -> list[str]:
    """Window, frequency and ago() spans within Azure Monitor's limits and the query's needs."""
    findings = []
    properties = rule.properties
    window = _duration(properties["windowSize"])
    frequency = _duration(properties["evaluationFrequency"])
    if window / timedelta(minutes=1) not in ALLOWED_WINDOW_MINUTES:
        findings.append(f"windowSize {properties['windowSize']} is not one Azure Monitor accepts")
    if not timedelta(minutes=1) <= frequency <= timedelta(days=1):
        findings.append(f"evaluationFrequency {properties['evaluationFrequency']} is outside 1 minute..1 day")
    if properties.get("autoMitigate", True) and frequency > timedelta(hours=12):
        findings.append("stateful (autoMitigate) rules need an evaluationFrequency of 12 hours or less")
    for query in rule.queries():
        for amount, unit in _AGO.findall(query):
            span = timedelta(**{_UNITS[unit]: int(amount)})
            if span > window:
                findings.append(
                    f"query looks back ago({amount}{unit}) but windowSize {properties['windowSize']} cuts it"
                )
    return findings


# --- a model of the KQL the dead-man query uses -------------------------------------------------


class Unsupported(AssertionError):
    """The query uses something the model does not know: review it and extend the model."""


Row = dict[str, Any]
_ZERO_DEFAULT = {"count", "countif", "sum", "sumif"}  # Kusto: 0 on no input; every other aggregate: null
_TIMESPAN = re.compile(r"(?<![\w.])(\d+)(d|h|m|s)\b")


def _parse_expression(text: str) -> ast.expr:
    # Timespan literals (26h) become calls; string literals are left as they are.
    pieces, last = [], 0
    for literal in _STRING.finditer(text):
        pieces.append(_TIMESPAN.sub(r'__timespan__(\1, "\2")', text[last : literal.start()]))
        pieces.append(literal.group(0))
        last = literal.end()
    pieces.append(_TIMESPAN.sub(r'__timespan__(\1, "\2")', text[last:]))
    python = "".join(pieces).strip()
    try:
        return ast.parse(python, mode="eval").body
    except SyntaxError as exc:
        raise Unsupported(f"cannot model expression {text.strip()!r}: {exc}") from exc


def _and(values: list[Any]) -> bool | None:
    if any(v is False for v in values):
        return False
    return None if any(v is None for v in values) else True


def _or(values: list[Any]) -> bool | None:
    if any(v is True for v in values):
        return True
    return None if any(v is None for v in values) else False


_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}


class KqlModel:
    """Evaluates the subset of KQL the dead-man query uses, with Kusto's null semantics: a
    comparison with null is null, `where` keeps only rows whose predicate is true."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        units = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
        self.functions: dict[str, Callable[..., Any]] = {
            "__timespan__": lambda n, unit: timedelta(**{units[unit]: n}),
            "ago": lambda span: self.now - span,
            "now": lambda: self.now,
            "isnull": lambda value: value is None,
            "isnotnull": lambda value: value is not None,
            "coalesce": lambda *values: next((v for v in values if v is not None), None),
            "tostring": lambda value: "" if value is None else str(value),
            "unixtime_seconds_todatetime": lambda s: None if s is None else datetime.fromtimestamp(s, UTC),
        }

    def eval(self, node: ast.expr, row: Row) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in row:
                raise Unsupported(f"column {node.id!r} does not exist here (columns: {sorted(row)})")
            return row[node.id]
        if isinstance(node, ast.Attribute):
            base = self.eval(node.value, row)
            return base.get(node.attr) if isinstance(base, dict) else None
        if isinstance(node, ast.Tuple):
            return tuple(self.eval(item, row) for item in node.elts)
        if isinstance(node, ast.BoolOp):
            values = [self.eval(value, row) for value in node.values]
            return _and(values) if isinstance(node.op, ast.And) else _or(values)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            value = self.eval(node.operand, row)
            return None if value is None else not value
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
            left, right = self.eval(node.left, row), self.eval(node.comparators[0], row)
            if left is None or right is None:
                return None
            return _COMPARE[type(node.ops[0])](left, right)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
            if node.func.id == "not" and len(node.args) == 1:
                value = self.eval(node.args[0], row)
                return None if value is None else not value
            function = self.functions.get(node.func.id)
            if function is None:
                raise Unsupported(f"function {node.func.id}() is not modelled")
            return function(*(self.eval(arg, row) for arg in node.args))
        raise Unsupported(f"expression {ast.unparse(node)!r} is not modelled")

    def aggregate(self, call: ast.expr, rows: list[Row]) -> Any:
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)):
            raise Unsupported(f"summarize needs a plain aggregate call, got {ast.unparse(call)!r}")
        name, args = call.func.id, call.args
        conditional = name.endswith("if") and name != "countif"
        if name == "countif" or conditional:
            predicate = args[-1]
            rows = [row for row in rows if self.eval(predicate, row) is True]
            args = args[:-1]
        base = "count" if name in {"count", "countif"} else name.removesuffix("if")
        if base == "count":
            return len(rows)
        if base not in {"sum", "max", "min"} or len(args) != 1:
            raise Unsupported(f"aggregate {name}() is not modelled")
        values = [v for v in (self.eval(args[0], row) for row in rows) if v is not None]
        if base == "sum":
            return float(sum(values))  # Kusto: 0 when there is nothing to add
        if not values:
            return None  # Kusto: null for max()/min() over nothing
        return max(values) if base == "max" else min(values)

    def run(self, query: str, tables: dict[str, list[Row]]) -> list[Row]:
        stages = [stage.strip() for stage in _split_top(_COMMENT.sub("", query), "|")]
        source = stages[0]
        if source not in tables:
            raise Unsupported(f"the query starts with {source!r}, not a table the model was given")
        rows = [dict(row) for row in tables[source]]
        for stage in stages[1:]:
            parts = re.fullmatch(r"([\w-]+)\s*(.*)", stage, re.S)
            if parts is None:
                raise Unsupported(f"cannot read stage {stage!r}")
            operator, rest = parts.group(1), parts.group(2).strip()
            if operator == "where":
                predicate = _parse_expression(rest)
                rows = [row for row in rows if self.eval(predicate, row) is True]
            elif operator == "summarize":
                if re.search(r"\bby\b", _without_strings(rest)):
                    raise Unsupported("summarize ... by: on an empty table that returns no row at all")
                summary: Row = {}
                for column, expression in self._assignments(rest):
                    summary[column] = self.aggregate(_parse_expression(expression), rows)
                rows = [summary]  # no `by`: exactly one row, even from no input
            elif operator == "extend":
                for row in rows:
                    for column, expression in self._assignments(rest):
                        row[column] = self.eval(_parse_expression(expression), row)
            elif operator == "project":
                projected = []
                for row in rows:
                    out: Row = {}
                    for column, expression in self._assignments(rest, bare=True):
                        out[column] = self.eval(_parse_expression(expression), row)
                    projected.append(out)
                rows = projected
            else:
                raise Unsupported(f"operator {operator!r} is not modelled")
        return rows

    @staticmethod
    def _assignments(text: str, *, bare: bool = False) -> list[tuple[str, str]]:
        pairs = []
        for part in _split_top(text, ","):
            match = re.fullmatch(r"\s*([A-Za-z_]\w*)\s*=(?!=)\s*(.+?)\s*", part, re.S)
            if match:
                pairs.append((match.group(1), match.group(2)))
            elif bare and re.fullmatch(r"\s*[A-Za-z_]\w*\s*", part):
                pairs.append((part.strip(), part.strip()))
            else:
                raise Unsupported(f"cannot read assignment {part.strip()!r}")
        return pairs


NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def _scan_row(outcome: str, *, hours_ago: float) -> Row:
    return {
        "timestamp": NOW - timedelta(hours=hours_ago),
        "name": "rotator.scans",
        "valueSum": 1.0,
        "customDimensions": {"outcome": outcome},
    }


def _gauge_row(*, last_success_hours_ago: float, reported_hours_ago: float) -> Row:
    return {
        "timestamp": NOW - timedelta(hours=reported_hours_ago),
        "name": "rotator.scan.last_success",
        "valueSum": (NOW - timedelta(hours=last_success_hours_ago)).timestamp(),
        "customDimensions": {},
    }


def _other_row(name: str, *, hours_ago: float) -> Row:
    return {"timestamp": NOW - timedelta(hours=hours_ago), "name": name, "valueSum": 3.0, "customDimensions": {}}


# (rows of customMetrics, whether the dead-man rule must fire)
DEAD_MAN_CASES: dict[str, tuple[list[Row], bool]] = {
    "empty-table-the-app-is-dead": ([], True),
    "only-other-metrics": ([_other_row("rotator.rotations", hours_ago=1)], True),
    "success-2h-ago": ([_scan_row("success", hours_ago=2)], False),
    "success-25h-ago": ([_scan_row("success", hours_ago=25)], False),
    "success-27h-ago-is-stale": ([_scan_row("success", hours_ago=27)], True),
    "failed-scans-only": ([_scan_row("failed", hours_ago=2), _scan_row("failed", hours_ago=20)], True),
    "gauge-says-success-3h-ago": ([_gauge_row(last_success_hours_ago=3, reported_hours_ago=1)], False),
    "gauge-alive-but-last-success-30h-ago": ([_gauge_row(last_success_hours_ago=30, reported_hours_ago=1)], True),
}


def dead_man_fires(rule: Rule, rows: list[Row]) -> bool:
    """Whether Azure Monitor would fire the rule on this customMetrics: the rule's criteria say
    "number of result rows > 0" (checked in dead_man_shape_findings)."""
    (query,) = rule.queries()
    return len(KqlModel(NOW).run(query, {"customMetrics": rows})) > 0


def dead_man_shape_findings(rule: Rule) -> list[str]:
    findings = []
    (condition,) = rule.conditions
    (query,) = rule.queries()
    stages = [s.strip() for s in _split_top(_without_strings(query), "|")]
    summarizes = [s for s in stages if s.startswith("summarize")]
    if not summarizes:
        findings.append("no summarize: an empty table gives no row, so a row-count rule cannot fire")
    elif re.search(r"\bby\b", summarizes[-1]):
        findings.append("the last summarize has `by`: an empty table then gives no row at all")
    if condition.get("timeAggregation") != "Count":
        findings.append("must count result rows (timeAggregation Count)")
    if condition.get("metricMeasureColumn"):
        findings.append("must count rows, not measure a column (an empty result has no value to measure)")
    if condition.get("operator") != "GreaterThan" or _resolve(rule.tree, condition.get("threshold")) != 0:
        findings.append("must fire on more than 0 rows (operator GreaterThan, threshold 0)")
    if condition.get("dimensions"):
        findings.append("must not split by dimension: the empty-table row has no dimension values")
    return findings


# --- the gate ---------------------------------------------------------------------------------


def test_exactly_the_four_rules() -> None:
    rules = _rules()
    assert {r.symbol for r in rules} == EXPECTED_RULES, [f"{r.file}:{r.symbol}" for r in rules]
    assert len(rules) == len(EXPECTED_RULES)
    assert {r.type for r in rules} == {SCHEDULED_QUERY_RULE}
    assert {r.file for r in rules} == {"modules/alerts.bicep"}


@pytest.mark.parametrize("symbol", sorted(EXPECTED_RULES))
def test_rule_is_enabled_scoped_to_the_component_and_notifies_the_action_group(symbol: str) -> None:
    rule = _rule(symbol)
    resources = rule.tree["resources"]
    assert rule.properties["enabled"] is True
    assert rule.body.get("kind") == "LogAlert"
    (scope,) = rule.properties["scopes"]
    operands = scope["operator"]["operands"]
    assert operands["operand_2"] == "id" and resources[operands["operand_1"]]["type"] == COMPONENT, (
        f"{symbol}: scope it on the Application Insights component (classic table names), got {scope!r}"
    )
    groups = rule.properties["actions"]["actionGroups"]
    assert len(groups) == 1, f"{symbol}: notify exactly the action group, got {groups!r}"
    operands = groups[0]["operator"]["operands"]
    group = resources.get(operands["operand_1"])
    assert operands["operand_2"] == "id" and group is not None and group["type"] == ACTION_GROUP, groups
    assert not group["existing"], "the action group must be deployed here, not assumed"
    # Runs its query as its own identity, which has Monitoring Reader on the component.
    assert rule.body["identity"]["type"] == "UserAssigned"
    # The runbook section each rule points to exists (in its description too).
    anchor = rule.properties["actions"]["customProperties"]["runbook"].split("#", 1)[1]
    assert anchor in _runbook_anchors(), f"{symbol}: docs/runbook.md has no section #{anchor}"
    assert f"#{anchor}" in rule.properties["description"]


@pytest.mark.parametrize("symbol", sorted(EXPECTED_RULES))
def test_rule_schedule_is_within_azure_limits_and_covers_its_query(symbol: str) -> None:
    assert schedule_findings(_rule(symbol)) == []


@pytest.mark.parametrize("symbol", sorted(EXPECTED_RULES))
def test_rule_dimensions_and_measure_are_columns_its_query_returns(symbol: str) -> None:
    rule = _rule(symbol)
    (condition,) = rule.conditions
    (query,) = rule.queries()
    last = _split_top(_without_strings(query), "|")[-1]  # `summarize ... by ...` or `project ...`
    columns = [d["name"] for d in condition.get("dimensions", [])]
    if condition.get("metricMeasureColumn"):
        columns.append(condition["metricMeasureColumn"])
    for column in columns:
        assert re.search(rf"\b{re.escape(column)}\b", last), f"{symbol}: the query does not return {column!r}"


def test_action_group_receivers_come_from_parameters() -> None:
    tree = _trees()["modules/alerts.bicep"]
    (group,) = [_body(r) for r in tree["resources"].values() if r["type"] == ACTION_GROUP]
    properties = group["properties"]
    assert properties["enabled"] is True
    emails = properties["emailReceivers"]
    assert emails["loop_type"]["detail"]["array_name"] == "emailAddresses"
    assert emails["config"]["useCommonAlertSchema"] is True
    webhook = properties["webhookReceivers"]["operator"]["operands"]
    receiver = _resolve(tree, webhook["false_value"])
    assert receiver[0]["serviceUri"] == "webhookUrl" and receiver[0]["useCommonAlertSchema"] is True
    assert {"type": "secure"} in tree["parameters"]["webhookUrl"]["decorators"]


def test_workbook_has_queries() -> None:
    workbooks = _workbook_queries()
    assert list(workbooks) == ["modules/workbook.bicep:workbook"]
    (queries,) = workbooks.values()
    assert len(queries) >= 2
    # One glance: days left, state and last rotation of every tenant.
    tenants = next(q for q in queries if "rotator.secret.days_left" in q)
    for column in ("daysLeft", "state", "lastRotation", "rotator.rotations"):
        assert column in tenants


@pytest.mark.parametrize("where,query", _all_queries(), ids=[w for w, _ in _all_queries()])
def test_query_names_only_metrics_the_app_defines(where: str, query: str) -> None:
    assert metric_findings(query) == [], where


@pytest.mark.parametrize("where,query", _all_queries(), ids=[w for w, _ in _all_queries()])
def test_query_reads_only_tables_the_app_emits(where: str, query: str) -> None:
    assert table_findings(query) == [], where


def test_every_metric_the_rules_need_is_queried() -> None:
    named = set().union(*(metric_names(q) for r in _rules() for q in r.queries()))
    assert named == {
        "rotator.rotations",
        "rotator.secret.days_left",
        "rotator.scans",
        "rotator.scan.last_success",
        "rotator.alerts",
    }


def test_rotation_failed_rule_matches_core_failed_outcomes() -> None:
    (query,) = _rule("rotationFailed").queries()
    match = re.search(r"\boutcome\s+in\s*\(([^)]*)\)", query)
    assert match, "the rotation-failed rule must filter `outcome in (...)`"
    assert set(_literals(match.group(1))) == set(FAILED_OUTCOMES)
    assert "tenant" in {d["name"] for d in _rule("rotationFailed").conditions[0]["dimensions"]}


def test_low_days_left_rule_fires_below_the_threshold_parameter() -> None:
    rule = _rule("lowDaysLeft")
    (condition,) = rule.conditions
    assert condition["operator"] == "LessThan"
    assert condition["threshold"] == "daysLeftThreshold"
    assert _resolve(rule.tree, condition["threshold"]) == 14
    assert condition["metricMeasureColumn"] == "daysLeft"
    assert "tenant" in {d["name"] for d in condition["dimensions"]}
    (query,) = rule.queries()
    assert re.search(r"\bdaysLeft\s*=\s*valueSum\b", query)


def test_poison_message_rule_counts_the_poison_alert_kind() -> None:
    (query,) = _rule("poisonMessage").queries()
    assert re.search(r'\bkind\s*==\s*"poison-message"', query)
    # The kind the poison-queue function alerts with.
    assert 'kind="poison-message"' in (ROOT / "blueprints" / "queue.py").read_text(encoding="utf-8")


def test_dead_man_rule_shape_fires_on_no_rows() -> None:
    assert dead_man_shape_findings(_rule(DEAD_MAN_RULE)) == []


@pytest.mark.parametrize("case", DEAD_MAN_CASES, ids=list(DEAD_MAN_CASES))
def test_dead_man_rule_behaviour(case: str) -> None:
    rows, fires = DEAD_MAN_CASES[case]
    assert dead_man_fires(_rule(DEAD_MAN_RULE), rows) is fires


def test_main_wires_alerts_and_workbook_to_the_component() -> None:
    modules = _trees()["main.bicep"]["modules"]
    for name, path in (("alerts", "modules/alerts.bicep"), ("workbook", "modules/workbook.bicep")):
        module = modules[name]
        assert module["detail"]["path"] == path
        insights = module["config"]["params"]["applicationInsightsName"]["operator"]["operands"]
        assert insights["operand_1"] == "monitoring", insights
        assert insights["operand_2"]["operator"]["operands"]["operand_2"] == "applicationInsightsName"


# --- the docs name every rule -------------------------------------------------------------------


def _runbook() -> str:
    return (ROOT / "docs" / "runbook.md").read_text(encoding="utf-8")


def _runbook_anchors() -> set[str]:
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+)$", _runbook(), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


# --- planted bugs: the gate can fail --------------------------------------------------------------


def _query_of(symbol: str) -> str:
    (query,) = _rule(symbol).queries()
    return query


PLANTED_METRIC_BUGS = {
    "renamed-metric": lambda q: q.replace('"rotator.rotations"', '"rotator.rotation"'),
    "unknown-metric-in-list": lambda q: q.replace('"rotator.rotations"', '"rotator.rotations", "rotator.retries"'),
    "loose-match": lambda q: q.replace('name == "rotator.rotations"', 'name startswith "rotator."'),
    "no-metric-named": lambda q: q.replace('| where name == "rotator.rotations"\n', ""),
}


@pytest.mark.parametrize("plant", PLANTED_METRIC_BUGS.values(), ids=PLANTED_METRIC_BUGS.keys())
def test_planted_metric_bug_is_caught(plant: Callable[[str], str]) -> None:
    original = _query_of("rotationFailed")
    planted = plant(original)
    assert planted != original, "the plant did not change the query: update it"
    assert metric_findings(planted)


PLANTED_TABLE_BUGS = {
    "workspace-table-name": lambda q: q.replace("customMetrics", "AppMetrics", 1),
    "join-requests": lambda q: q + "| join kind=inner (requests | project tenant = name) on tenant\n",
    "union-traces": lambda q: q.replace("customMetrics", "union customMetrics, traces", 1),
    "let-bound-exceptions": lambda q: "let failures = exceptions | take 1;\n" + q,
    # Names no list knows: found by reading the query's structure alone.
    "join-custom-table": lambda q: q + "| join kind=leftouter (RotatorEvents_CL | project tenant) on tenant\n",
    "union-custom-table": lambda q: q.replace("customMetrics", "union isfuzzy=true customMetrics, (Rotator_CL)", 1),
    "custom-table-source": lambda q: q.replace("customMetrics", "RotatorMetrics_CL", 1),
}


@pytest.mark.parametrize("plant", PLANTED_TABLE_BUGS.values(), ids=PLANTED_TABLE_BUGS.keys())
def test_planted_table_bug_is_caught(plant: Callable[[str], str]) -> None:
    original = _query_of("poisonMessage")
    planted = plant(original)
    assert planted != original
    assert table_findings(planted)


PLANTED_DEAD_MAN_BUGS = {
    # `by` makes an empty table return no rows: a dead app would never fire.
    "summarize-by": lambda q: q.replace("| extend lastSuccess", "by bin(timestamp, 1h)\n| extend lastSuccess", 1),
    # Forgetting null: with no gauge row, lastSuccess is null and the comparison is null.
    "no-isnull": lambda q: q.replace("(isnull(lastSuccess) or lastSuccess < ago(26h))", "lastSuccess < ago(26h)"),
    # Filtering on the sum without coalesce still works (sumif gives 0); filtering for rows that
    # exist (a success) inverts the rule.
    "inverted": lambda q: q.replace("coalesce(successfulScans, 0.0) < 1", "successfulScans >= 1"),
}


@pytest.mark.parametrize("plant", PLANTED_DEAD_MAN_BUGS.values(), ids=PLANTED_DEAD_MAN_BUGS.keys())
def test_planted_dead_man_bug_is_caught(plant: Callable[[str], str]) -> None:
    rule = _rule(DEAD_MAN_RULE)
    original = _query_of(DEAD_MAN_RULE)
    planted = plant(original)
    assert planted != original, "the plant did not change the query: update it"
    broken = _with_query(rule, planted)
    caught = bool(dead_man_shape_findings(broken))
    try:
        caught |= not dead_man_fires(broken, [])
    except Unsupported:
        caught = True
    assert caught, "a dead-man query that stays silent on an empty table passed the gate"


def test_planted_window_too_short_is_caught() -> None:
    rule = _rule(DEAD_MAN_RULE)
    short = dict(rule.body, properties=dict(rule.properties, windowSize="PT6H"))
    assert schedule_findings(Rule(rule.file, rule.symbol, rule.type, rule.tree, short))


def test_model_refuses_what_it_does_not_know() -> None:
    with pytest.raises(Unsupported):
        KqlModel(NOW).run("customMetrics\n| take 1", {"customMetrics": []})
    with pytest.raises(Unsupported):
        KqlModel(NOW).run("customMetrics\n| where strlen(name) > 0", {"customMetrics": [_other_row("x", hours_ago=1)]})


def _with_query(rule: Rule, query: str) -> Rule:
    """The same rule holding `query` as a literal."""
    condition = dict(rule.conditions[0], query=query)
    properties = dict(rule.properties, criteria={"allOf": [condition]})
    return Rule(rule.file, rule.symbol, rule.type, rule.tree, dict(rule.body, properties=properties))
