"""The slice of OData that Karbon's v3 API supports on the endpoints the sandbox serves.

Query options are validated like Karbon's ASP.NET OData service validates them, answering 400
with ``{"error": {"code": "4002", "message": ...}}`` and the messages of the spec's examples:

* ``$top`` above 100: "The limit of '100' for Top query has been exceeded. The value from the
  incoming request is '130'."
* an option the endpoint does not allow: "Query option 'Select' is not allowed. To allow it, set
  the 'AllowedQueryOptions' property on EnableQueryAttribute or QueryValidationSettings."
  (ASP.NET names options by its ``AllowedQueryOptions`` enum: Filter, OrderBy, Expand, ...)
* a ``$filter`` on a property the entity lacks: "Could not find a property named 'X' on type
  'KarbonService.XSummaryDTO'."; on a property it has but does not filter by: "The property 'X'
  cannot be used in the $filter query option."; an operator it does not allow: "Logical operator
  'NotEqual' is not allowed. To allow it, set the 'AllowedLogicalOperators' property on
  EnableQueryAttribute or QueryValidationSettings."; a function: "Function 'contains' is not
  allowed. ..." (the last two are ASP.NET's own wording, the spec gives the first).
* ``$orderby`` on anything else: "The property 'X' cannot be used in the $orderby query option."

Where the spec is silent the sandbox follows ASP.NET OData v4 and notes it: unknown ``$`` options
are rejected ("The query parameter '$foo' is not supported."), a repeated option is rejected,
string comparisons ignore case (SQL Server's default collation), date-only literals
(``StartDate ge 2024-01-01``, the spec's own example) mean midnight UTC, and ``$orderby`` ties are
broken by the entity key so paging is stable (ASP.NET's ``EnsureStableOrdering``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qsl

TOP_LIMIT = 100

OPTION_NAMES = {
    "$filter": "Filter",
    "$orderby": "OrderBy",
    "$expand": "Expand",
    "$select": "Select",
    "$top": "Top",
    "$skip": "Skip",
    "$count": "Count",
    "$skiptoken": "SkipToken",
    "$format": "Format",
    "$search": "Search",
    "$apply": "Apply",
    "$compute": "Compute",
    "$deltatoken": "DeltaToken",
}

OPERATOR_NAMES = {
    "eq": "Equal",
    "ne": "NotEqual",
    "gt": "GreaterThan",
    "ge": "GreaterThanOrEqual",
    "lt": "LessThan",
    "le": "LessThanOrEqual",
    "and": "And",
    "or": "Or",
    "not": "Not",
    "in": "In",
    "has": "Has",
}


class ODataError(Exception):
    """A query Karbon would refuse with 400."""

    def __init__(self, message: str, code: str = "4002") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def not_allowed(option: str) -> ODataError:
    name = OPTION_NAMES.get(option, option)
    return ODataError(
        f"Query option '{name}' is not allowed. To allow it, set the 'AllowedQueryOptions' "
        "property on EnableQueryAttribute or QueryValidationSettings."
    )


def operator_not_allowed(op: str) -> ODataError:
    return ODataError(
        f"Logical operator '{OPERATOR_NAMES.get(op, op)}' is not allowed. To allow it, set the "
        "'AllowedLogicalOperators' property on EnableQueryAttribute or QueryValidationSettings."
    )


def function_not_allowed(fn: str) -> ODataError:
    return ODataError(
        f"Function '{fn}' is not allowed. To allow it, set the 'AllowedFunctions' property on "
        "EnableQueryAttribute or QueryValidationSettings."
    )


# ------------------------------------------------------------------------------------------------
# What an endpoint supports
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FilterField:
    kind: str  # "string" | "datetime" | "key" | "collection"
    get: Callable[[Any], Any]
    ops: frozenset[str]  # eq, gt, ge, lt, le, in, contains, any
    functions: frozenset[str] = frozenset()  # day, month, year


@dataclass(frozen=True)
class QuerySpec:
    """The OData surface of one endpoint."""

    entity_set: str
    dto: str  # for "Could not find a property named ... on type 'KarbonService.<dto>'"
    options: frozenset[str]  # allowed system query options ("$top", "$filter", ...)
    properties: frozenset[str] = frozenset()  # properties of the type (for error messages)
    filters: dict[str, FilterField] = field(default_factory=dict)
    orderby: dict[str, Callable[[Any], Any]] = field(default_factory=dict)
    expand: tuple[str, ...] = ()


@dataclass
class Query:
    top: int | None = None
    skip: int = 0
    filter_text: str | None = None
    predicate: Callable[[Any], bool] | None = None
    orderby: tuple[tuple[str, bool], ...] = ()  # (property, descending)
    expand: list[str] = field(default_factory=list)


def parse_query(
    raw_query: str, spec: QuerySpec, *, extra_filters: dict[str, FilterField] | None = None
) -> Query:
    """Validate ``raw_query`` against ``spec``; raise :class:`ODataError` as Karbon would."""
    q = Query()
    seen: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        if not name.startswith("$"):
            continue  # ASP.NET ignores custom query parameters
        lname = name.lower()
        if lname in seen:
            raise ODataError(
                f"Query option '{name}' was specified more than once, but it must "
                "be specified at most once."
            )
        seen[lname] = value
        if lname not in OPTION_NAMES:
            raise ODataError(f"The query parameter '{name}' is not supported.")
        if lname not in spec.options:
            raise not_allowed(lname)
    if "$top" in seen:
        q.top = _non_negative(seen["$top"], "$top")
        if q.top > TOP_LIMIT:
            raise ODataError(
                f"The limit of '{TOP_LIMIT}' for Top query has been exceeded. The "
                f"value from the incoming request is '{q.top}'."
            )
    if "$skip" in seen:
        q.skip = _non_negative(seen["$skip"], "$skip")
    if "$count" in seen:
        v = seen["$count"].strip().lower()
        if v not in ("true", "false"):
            raise ODataError(f"'{seen['$count']}' is not a valid count option.")
        # Validated, but Karbon's list schemas require @odata.count: it is always present.
    if "$expand" in seen:
        for item in (s.strip() for s in seen["$expand"].split(",")):
            if item not in spec.expand:
                raise ODataError(
                    f"Could not find a property named '{item}' on type 'KarbonService.{spec.dto}'."
                )
            if item not in q.expand:
                q.expand.append(item)
    if "$orderby" in seen:
        q.orderby = _parse_orderby(seen["$orderby"], spec)
    if "$filter" in seen:
        filters = dict(spec.filters)
        if extra_filters:
            filters.update(extra_filters)
        q.filter_text = seen["$filter"]
        q.predicate = compile_filter(seen["$filter"], spec, filters)
    return q


def _non_negative(value: str, option: str) -> int:
    v = value.strip()
    if not re.fullmatch(r"\+?\d+", v):
        raise ODataError(
            f"Invalid value '{value}' for {option} query option found. The {option} "
            "query option requires a non-negative integer value."
        )
    return int(v)


def _parse_orderby(text: str, spec: QuerySpec) -> tuple[tuple[str, bool], ...]:
    out: list[tuple[str, bool]] = []
    for clause in text.split(","):
        parts = clause.split()
        if not parts:
            raise ODataError(f"Syntax error at position {len(text)} in '{text}'.")
        prop = parts[0]
        desc = False
        if len(parts) == 2 and parts[1].lower() in ("asc", "desc"):
            desc = parts[1].lower() == "desc"
        elif len(parts) != 1:
            raise ODataError(f"Syntax error at position {len(text)} in '{text}'.")
        if prop not in spec.orderby:
            raise ODataError(f"The property '{prop}' cannot be used in the $orderby query option.")
        out.append((prop, desc))
    return tuple(out)


# ------------------------------------------------------------------------------------------------
# $filter: tokenizer, parser and compiler
# ------------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<dt>datetime'[^']*'|\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?
            (?:Z|[+-]\d{2}:\d{2})?)?)
      | (?P<str>'(?:[^']|'')*')
      | (?P<num>-?\d+(?:\.\d+)?)
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<punct>[(),:/])
    )""",
    re.VERBOSE,
)

_KEYWORDS = {"eq", "ne", "gt", "ge", "lt", "le", "and", "or", "not", "in", "has"}
_COMPARISONS = {"eq", "ne", "gt", "ge", "lt", "le", "has"}


@dataclass
class _Tok:
    kind: str  # dt, str, num, name, punct, end
    value: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ODataError(f"Syntax error at position {pos} in '{text}'.")
        kind = m.lastgroup or "punct"
        toks.append(_Tok(kind, m.group(kind), m.start(kind)))
        pos = m.end()
    toks.append(_Tok("end", "", len(text)))
    return toks


class _Parser:
    """Recursive descent over: or / and / not / comparison / in / function / any()."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0

    def error(self) -> ODataError:
        return ODataError(f"Syntax error at position {self.peek().pos} in '{self.text}'.")

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def is_word(self, word: str) -> bool:
        t = self.peek()
        return t.kind == "name" and t.value.lower() == word

    def expect(self, value: str) -> None:
        t = self.take()
        if t.value != value:
            self.i -= 1
            raise self.error()

    def parse(self) -> tuple[Any, ...]:
        node = self.or_expr()
        if self.peek().kind != "end":
            raise self.error()
        return node

    def or_expr(self) -> tuple[Any, ...]:
        node = self.and_expr()
        while self.is_word("or"):
            self.take()
            node = ("or", node, self.and_expr())
        return node

    def and_expr(self) -> tuple[Any, ...]:
        node = self.not_expr()
        while self.is_word("and"):
            self.take()
            node = ("and", node, self.not_expr())
        return node

    def not_expr(self) -> tuple[Any, ...]:
        if self.is_word("not"):
            self.take()
            return ("not", self.not_expr())
        return self.comparison()

    def comparison(self) -> tuple[Any, ...]:
        left = self.operand()
        t = self.peek()
        if t.kind == "name" and t.value.lower() in _COMPARISONS:
            self.take()
            return ("cmp", t.value.lower(), left, self.operand())
        if t.kind == "name" and t.value.lower() == "in":
            self.take()
            return ("in", left, self.literal_list())
        return ("bool", left)

    def literal_list(self) -> list[tuple[Any, ...]]:
        self.expect("(")
        items = [self.operand()]
        while self.peek().value == ",":
            self.take()
            items.append(self.operand())
        self.expect(")")
        return items

    def operand(self) -> tuple[Any, ...]:
        t = self.take()
        if t.kind == "punct" and t.value == "(":
            node = self.or_expr()
            self.expect(")")
            return ("group", node)
        if t.kind == "str":
            return ("lit", "string", t.value[1:-1].replace("''", "'"))
        if t.kind == "dt":
            return ("lit", "datetime", _parse_datetime(t.value, self.text, t.pos))
        if t.kind == "num":
            return ("lit", "number", int(t.value) if "." not in t.value else float(t.value))
        if t.kind == "name":
            low = t.value.lower()
            if low in ("true", "false"):
                return ("lit", "bool", low == "true")
            if low == "null":
                return ("lit", "null", None)
            if low in _KEYWORDS:
                self.i -= 1
                raise self.error()
            if self.peek().value == "(":  # function call
                self.take()
                args = [self.operand()]
                while self.peek().value == ",":
                    self.take()
                    args.append(self.operand())
                self.expect(")")
                return ("func", t.value, args)
            if self.peek().value == "/":  # Collection/any(x: ...)
                self.take()
                fn = self.take()
                if fn.kind != "name" or fn.value.lower() not in ("any", "all"):
                    self.i -= 1
                    raise self.error()
                self.expect("(")
                var = self.take()
                if var.kind != "name":
                    self.i -= 1
                    raise self.error()
                self.expect(":")
                body = self.or_expr()
                self.expect(")")
                return ("lambda", fn.value.lower(), t.value, var.value, body)
            return ("prop", t.value)
        self.i -= 1
        raise self.error()


def _parse_datetime(raw: str, text: str, pos: int) -> datetime:
    value = raw[9:-1] if raw.startswith("datetime'") else raw
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
        v = value.replace("Z", "+00:00")
        dt = datetime.fromisoformat(v)
    except ValueError as exc:
        raise ODataError(f"Syntax error at position {pos} in '{text}'.") from exc
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _as_datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, datetime.min.time(), UTC)
    raise TypeError(value)


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


_EDM = {
    "string": "Edm.String",
    "datetime": "Edm.DateTimeOffset",
    "number": "Edm.Int32",
    "bool": "Edm.Boolean",
    "null": "Edm.Null",
    "key": "Edm.String",
    "collection": "Collection(Edm.String)",
}


def compile_filter(
    text: str, spec: QuerySpec, filters: dict[str, FilterField]
) -> Callable[[Any], bool]:
    ast = _Parser(text).parse()
    return _Compiler(spec, filters).predicate(ast)


class _Compiler:
    def __init__(self, spec: QuerySpec, filters: dict[str, FilterField]) -> None:
        self.spec = spec
        self.filters = filters

    def field(self, name: str) -> FilterField:
        f = self.filters.get(name)
        if f is not None:
            return f
        if name in self.spec.properties:
            raise ODataError(f"The property '{name}' cannot be used in the $filter query option.")
        raise ODataError(
            f"Could not find a property named '{name}' on type 'KarbonService.{self.spec.dto}'."
        )

    def predicate(self, node: tuple[Any, ...], var: str | None = None) -> Callable[[Any], bool]:
        kind = node[0]
        if kind == "group":
            return self.predicate(node[1], var)
        if kind in ("or", "not"):
            raise operator_not_allowed(kind)
        if kind == "and":
            a, b = self.predicate(node[1], var), self.predicate(node[2], var)
            return lambda r: a(r) and b(r)
        if kind == "cmp":
            return self.comparison(node[1], node[2], node[3], var)
        if kind == "in":
            return self.membership(node[1], node[2], var)
        if kind == "bool":
            inner = node[1]
            if inner[0] == "func":
                return self.function_predicate(inner)
            if inner[0] == "lambda":
                return self.lambda_predicate(inner)
            if inner[0] == "group":
                return self.predicate(inner[1], var)
        raise ODataError("The $filter expression must evaluate to a single boolean value.")

    # -- pieces -------------------------------------------------------------------------------
    def function_predicate(self, node: tuple[Any, ...]) -> Callable[[Any], bool]:
        _k, name, args = node
        if name.lower() != "contains":
            raise function_not_allowed(name)
        if len(args) != 2 or args[0][0] != "prop" or args[1][:2] != ("lit", "string"):
            raise ODataError("The 'contains' function requires a property and a string.")
        prop = args[0][1]
        f = self.field(prop)
        if "contains" not in f.ops:
            raise function_not_allowed("contains")
        needle = args[1][2].casefold()
        get = f.get
        return lambda r: isinstance(v := get(r), str) and needle in v.casefold()

    def lambda_predicate(self, node: tuple[Any, ...]) -> Callable[[Any], bool]:
        _k, fn, prop, var, body = node
        f = self.field(prop)
        if f.kind != "collection" or fn not in f.ops:
            raise ODataError(f"The property '{prop}' cannot be used in the $filter query option.")
        # body may only compare the range variable with literals.
        if (
            body[0] == "cmp"
            and body[1] == "eq"
            and body[2] == ("prop", var)
            and body[3][:2] == ("lit", "string")
        ):
            wanted = {body[3][2]}
        elif (
            body[0] == "in"
            and body[1] == ("prop", var)
            and all(x[:2] == ("lit", "string") for x in body[2])
        ):
            wanted = {x[2] for x in body[2]}
        else:
            raise ODataError(f"The property '{prop}' cannot be used in the $filter query option.")
        get = f.get
        if fn == "any":
            return lambda r: any(k in wanted for k in get(r))
        return lambda r: all(k in wanted for k in get(r))

    def membership(
        self, left: tuple[Any, ...], items: list[tuple[Any, ...]], var: str | None
    ) -> Callable[[Any], bool]:
        if left[0] != "prop":
            raise ODataError("The left operand of 'in' must be a property.")
        f = self.field(left[1])
        if "in" not in f.ops:
            raise operator_not_allowed("in")
        if not all(x[:2] == ("lit", "string") for x in items):
            raise ODataError("The 'in' operator requires a list of string literals.")
        get = f.get
        if f.kind == "key":
            keys = {x[2] for x in items}
            return lambda r: get(r) in keys
        folded = {x[2].casefold() for x in items}
        return lambda r: _fold(get(r)) in folded

    def comparison(
        self, op: str, left: tuple[Any, ...], right: tuple[Any, ...], var: str | None
    ) -> Callable[[Any], bool]:
        if op in ("ne", "has"):
            raise operator_not_allowed(op)
        if left[0] == "func":  # day(StartDate) eq 4
            return self.date_part(op, left, right)
        if left[0] != "prop" or right[0] != "lit":
            if right[0] == "prop" and left[0] == "lit":
                left, right = right, left
                op = {"gt": "lt", "lt": "gt", "ge": "le", "le": "ge"}.get(op, op)
            else:
                raise ODataError(f"Syntax error in '{left}'.")
        f = self.field(left[1])
        if op not in f.ops:
            raise operator_not_allowed(op)
        lit_kind, lit = right[1], right[2]
        if f.kind == "datetime":
            if lit_kind != "datetime":
                raise ODataError(
                    "A binary operator with incompatible types was detected. Found operand types "
                    f"'Edm.DateTimeOffset' and '{_EDM.get(lit_kind, lit_kind)}' for operator kind "
                    f"'{OPERATOR_NAMES[op]}'."
                )
            get = f.get
            cmp = _CMP[op]
            return lambda r: (v := _as_datetime(get(r))) is not None and cmp(v, lit)
        if lit_kind != "string":
            raise ODataError(
                "A binary operator with incompatible types was detected. Found operand types "
                f"'Edm.String' and '{_EDM.get(lit_kind, lit_kind)}' for operator kind "
                f"'{OPERATOR_NAMES[op]}'."
            )
        get = f.get
        if f.kind == "key":
            return lambda r: get(r) == lit
        folded = lit.casefold()
        return lambda r: _fold(get(r)) == folded

    def date_part(
        self, op: str, left: tuple[Any, ...], right: tuple[Any, ...]
    ) -> Callable[[Any], bool]:
        _k, fn, args = left
        fn = fn.lower()
        if len(args) != 1 or args[0][0] != "prop":
            raise function_not_allowed(fn)
        f = self.field(args[0][1])
        if fn not in f.functions:
            raise function_not_allowed(fn)
        if right[:2] != ("lit", "number"):
            raise ODataError("Date functions compare with a number.")
        if op not in f.ops:
            raise operator_not_allowed(op)
        n = right[2]
        cmp = _CMP[op]
        get = f.get
        return lambda r: (v := _as_datetime(get(r))) is not None and cmp(getattr(v, fn), n)


_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}
