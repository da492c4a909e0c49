"""`DirectRoute`: a route that resolves its own declared parameters, for the busiest request.

FastAPI inspects every declared parameter's annotation again on each request; for the items, with a
dozen query parameters, that costs more than building the page. A `DirectRoute` reads the same
declarations once, when its handler is built, into a plan: for each dependency (and the endpoint)
the keyword that takes the request, and the path and query fields it takes. A request is then
answered by following the plan: every given value is validated by the very field FastAPI would use
(the common ones, a count or a value the field accepted before, read by the field's `Reader` without
pydantic, which costs a page microseconds per value), each dependency is called once, in FastAPI's
order, and then the endpoint, so the answer is FastAPI's.
The endpoint and its dependencies run for every request; breakpoints in them fire.

What the plan cannot answer the same way goes to FastAPI's own handler, built from the same
declarations: a value a field refuses (FastAPI reports every refused field in one 400), a missing
required value, dependency overrides. A route whose declarations hold anything else (a body, headers,
cookies, security scopes, a dependency with `yield`, a list-valued parameter) is FastAPI's throughout.
The OpenAPI document is FastAPI's, from the same declarations.
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from types import NoneType, UnionType
from typing import Any, TypeVar, Union, get_args, get_origin

import annotated_types
import fastapi.routing
from fastapi._compat import ModelField
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIRouter
from pydantic import AfterValidator, BeforeValidator, PlainValidator, WrapValidator
from pydantic.types import AllowInfNan
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])
# The values a field may default to: shared between requests, so they must not change.
_IMMUTABLE = (NoneType, str, int, float, bool)
_SCALARS = frozenset({str, int, float, bool})
# What a Dependant may declare that the plan does not resolve (any of them: FastAPI resolves it).
_UNPLANNED = ("header_params", "cookie_params", "body_params", "websocket_param_name",
              "http_connection_param_name", "response_param_name", "background_tasks_param_name",
              "security_scopes_param_name", "own_oauth_scopes")


# What `Reader.read` gives when it cannot tell: the field (pydantic) decides.
UNSURE: Any = object()
# Values a field has accepted that a Reader keeps, at most (per field; the keys are the client's).
MEMO_SIZE = 256
# Numeric bounds a Reader checks itself: the rule's type -> (its attribute, the test it makes).
_BOUNDS: dict[type, tuple[str, Callable[[Any, Any], bool]]] = {
    annotated_types.Ge: ("ge", operator.ge), annotated_types.Gt: ("gt", operator.gt),
    annotated_types.Le: ("le", operator.le), annotated_types.Lt: ("lt", operator.lt)}
_FUNCTIONS = (BeforeValidator, AfterValidator, WrapValidator, PlainValidator, annotated_types.Predicate)


def _one_argument(function: Callable[..., Any]) -> bool:
    """Whether pydantic calls this validator function with the value alone (one required positional
    parameter, no `info`)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return len([p for p in parameters if p.kind in positional and p.default is p.empty]) == 1


class Reader:
    """Reads the common values of one field without pydantic, and otherwise says UNSURE (the field then
    validates, and any error is pydantic's own).

    An integer field whose only rules are integer bounds and at most one single-argument
    before-validator (`limit`, `offset`) reads a value itself: the validator is called as pydantic
    would call it, a result of ASCII digits read as an int, and the bounds checked; anything else (a
    sign, a space, a value out of bounds, a validator's refusal) is UNSURE. A field whose rules are
    only constraints, no function (`f`: a pattern), remembers up to MEMO_SIZE values it accepted:
    they are immutable scalars, and the same value always validates the same way."""

    __slots__ = ("before", "bounds", "integer", "memo")

    def __init__(self, model: ModelField) -> None:
        info = model.field_info
        self.before: Callable[..., Any] | None = None
        self.bounds: list[tuple[Callable[[Any, Any], bool], int]] = []
        self.integer = info.annotation in (int, int | None)
        remembers = True
        for rule in info.metadata:
            bound = _BOUNDS.get(type(rule))
            if bound is not None and type(getattr(rule, bound[0])) is int:
                self.bounds.append((bound[1], getattr(rule, bound[0])))
            elif isinstance(rule, BeforeValidator) and self.before is None and _one_argument(rule.func):
                self.before = rule.func
                remembers = False
            else:
                self.integer = False
                remembers = remembers and not isinstance(rule, _FUNCTIONS) and isinstance(
                    rule, annotated_types.BaseMetadata | AllowInfNan)
        self.memo: dict[str, Any] | None = {} if remembers else None

    def read(self, raw: str) -> Any:
        """The field's value for `raw`, or UNSURE."""
        if self.memo is not None and (known := self.memo.get(raw, UNSURE)) is not UNSURE:
            return known
        if not self.integer:
            return UNSURE
        try:
            value = raw if self.before is None else self.before(raw)
        except Exception:
            return UNSURE  # the field raises it again, as its own error
        if type(value) is str and 0 < len(value) <= 18 and value.isascii() and value.isdigit():
            value = int(value)
        if type(value) is not int or not all(test(value, bound) for test, bound in self.bounds):
            return UNSURE
        return value

    def remember(self, raw: str, value: Any) -> None:
        """Keep a value the field accepted (a field with a validator function keeps none)."""
        if self.memo is not None and len(self.memo) < MEMO_SIZE:
            self.memo[raw] = value


@dataclass(frozen=True)
class Param:
    """A path or query parameter of one step: the keyword it is passed as, and its field (None for a
    string with no constraint, which takes the value as it is) with its Reader."""

    step: int
    keyword: str
    field: ModelField | None
    reader: Reader | None = None


@dataclass(frozen=True)
class Step:
    """A dependency or the endpoint: what to call, and where its arguments come from."""

    call: Callable[..., Any]
    is_async: bool
    cached: bool
    # The keyword that takes the request, if any.
    request: str | None
    # What its optional parameters take when the request does not give them.
    defaults: dict[str, Any]
    # (keyword, step index): its dependencies in declaration order (None: called for its effect only).
    needs: tuple[tuple[str | None, int], ...]


@dataclass(frozen=True)
class Plan:
    """How to answer a route's request: its steps in the order FastAPI calls them (each dependency
    after its own, the endpoint last), and its parameters by name."""

    steps: tuple[Step, ...]
    path: dict[str, tuple[Param, ...]]
    query: dict[str, tuple[Param, ...]]
    required_path: frozenset[str]
    required_query: frozenset[str]


def _scalar(annotation: Any) -> bool:
    """Whether a parameter's type is one value (str, int, float or bool, maybe None), not a list."""
    members = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)
    return all(m is NoneType or m in _SCALARS for m in members)


def _plain(model: ModelField) -> bool:
    """Whether the plan reads this parameter as FastAPI does: one value, looked up by its alias alone,
    defaulting (when optional) to a value that requests may share."""
    info = model.field_info
    # A validation alias other than the alias: FastAPI would look the value up by other names too.
    if (not _scalar(info.annotation) or info.validation_alias not in (None, model.alias)
            or info.validate_default or getattr(model, "config", None)):
        return False
    return info.is_required() or isinstance(model.get_default(), _IMMUTABLE)


def _any_string(model: ModelField) -> bool:
    """Whether the field takes any string as it is (a `str` with no constraint): nothing to validate."""
    info = model.field_info
    return info.annotation in (str, str | None) and not info.metadata


class _Builder:
    """Walks a route's Dependant into a Plan."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.params: dict[str, dict[str, list[Param]]] = {"path": {}, "query": {}}
        self.required: dict[str, set[str]] = {"path": set(), "query": set()}

    def add(self, dependant: Dependant) -> int | None:
        """The index of the dependant's step (after those of its dependencies), or None when it declares
        what the plan does not resolve."""
        call = dependant.call
        if call is None or any(getattr(dependant, name, None) for name in _UNPLANNED):
            return None
        if getattr(dependant, "concurrency", None) is not None:
            return None
        function = inspect.unwrap(call)
        if inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function):
            return None
        needs: list[tuple[str | None, int]] = []
        for sub in dependant.dependencies:
            need = self.add(sub)
            if need is None:
                return None
            needs.append((sub.name, need))
        index = len(self.steps)
        defaults: dict[str, Any] = {}
        for where, models in (("path", dependant.path_params), ("query", dependant.query_params)):
            for model in models:
                if not _plain(model):
                    return None
                field = None if _any_string(model) else model
                reader = None if field is None else Reader(field)
                self.params[where].setdefault(model.alias, []).append(Param(index, model.name, field, reader))
                if model.field_info.is_required():
                    self.required[where].add(model.alias)
                else:
                    defaults[model.name] = model.get_default()
        self.steps.append(Step(call, inspect.iscoroutinefunction(function), dependant.use_cache,
                               dependant.request_param_name, defaults, tuple(needs)))
        return index


def plan(dependant: Dependant) -> Plan | None:
    """The plan of a route's dependant, or None when it declares something the plan does not resolve."""
    builder = _Builder()
    if builder.add(dependant) is None:
        return None
    path, query = ({alias: tuple(ps) for alias, ps in builder.params[where].items()}
                   for where in ("path", "query"))
    return Plan(tuple(builder.steps), path, query, frozenset(builder.required["path"]),
                frozenset(builder.required["query"]))


def arguments(route_plan: Plan, request: Request) -> list[dict[str, Any]] | None:
    """Each step's path and query arguments, validated by their own fields; None when FastAPI should
    answer (a field refuses a value, or a required one is missing). Nothing is called."""
    out = [dict(step.defaults) for step in route_plan.steps]
    for where, params, required, given in (
            ("path", route_plan.path, route_plan.required_path, request.path_params),
            ("query", route_plan.query, route_plan.required_query, request.query_params)):
        if required and not required <= given.keys():
            return None
        # The last value of a repeated parameter, as FastAPI reads it.
        for alias, raw in given.items():
            for param in params.get(alias, ()):
                value = raw
                if param.field is not None and param.reader is not None:
                    value = param.reader.read(raw)
                    if value is UNSURE:
                        value, errors = param.field.validate(raw, {}, loc=(where, alias))
                        if errors:
                            return None
                        param.reader.remember(raw, value)
                out[param.step][param.keyword] = value
    return out


async def run(route_plan: Plan, request: Request, given: list[dict[str, Any]]) -> Any:
    """Call the steps in order with their arguments, and return the endpoint's answer. As in FastAPI, a
    dependency met again is not called again (unless it asks for that: `use_cache=False`)."""
    results: list[Any] = []
    done: dict[Callable[..., Any], Any] = {}
    for index, step in enumerate(route_plan.steps):
        if step.cached and step.call in done:
            results.append(done[step.call])
            continue
        kwargs = given[index]
        for keyword, need in step.needs:
            if keyword is not None:
                kwargs[keyword] = results[need]
        if step.request is not None:
            kwargs[step.request] = request
        value = await step.call(**kwargs) if step.is_async else await run_in_threadpool(step.call, **kwargs)
        done.setdefault(step.call, value)
        results.append(value)
    return results[-1]


def _effective(route: APIRoute) -> Any:
    """What FastAPI builds this handler for: the route as included in the app, with the inclusion's
    dependencies and overrides (FastAPI 0.165 keeps those apart from the route, under a private name),
    or the route itself (older versions copy a route into the app with them).
    tests/test_direct_route.py checks that an inclusion's dependency runs on the plan."""
    context_var = getattr(fastapi.routing, "_effective_route_context_var", None)
    context = context_var.get() if context_var is not None else None
    return context if context is not None and getattr(context, "original_route", None) is route else route


class DirectRoute(APIRoute):
    """An APIRoute answered by following its plan; FastAPI's handler for what the plan leaves to it.

    `direct` is that handler (None when the route's declarations have no plan): besides FastAPI's
    router, geo/routers/dispatch.py calls it for the app's leading GET routes."""

    direct: Handler | None = None

    def get_route_handler(self) -> Handler:
        """FastAPI's handler, fronted by the plan's when the route's declarations have one."""
        by_fastapi = super().get_route_handler()
        route = _effective(self)
        route_plan = plan(route.dependant)
        if route_plan is None:
            return by_fastapi
        overrides = getattr(route, "dependency_overrides_provider", None)

        async def handler(request: Request) -> Response:
            if overrides is not None and getattr(overrides, "dependency_overrides", None):
                return await by_fastapi(request)
            given = arguments(route_plan, request)
            if given is None:
                return await by_fastapi(request)
            response = await run(route_plan, request, given)
            if not isinstance(response, Response):
                raise TypeError(f"{self.path}: the endpoint of a DirectRoute returns a Response")
            return response

        if route is self:  # the route as built for the app itself, not for one inclusion of it
            self.direct = handler
        return handler


def direct_route(router: APIRouter, path: str, *, methods: list[str],
                 **options: Any) -> Callable[[Endpoint], Endpoint]:
    """`@router.api_route(path, methods=methods, **options)`, the route being a DirectRoute."""
    def register(endpoint: Endpoint) -> Endpoint:
        router.add_api_route(path, endpoint, methods=methods, route_class_override=DirectRoute, **options)
        return endpoint
    return register


def direct_get(router: APIRouter, path: str, **options: Any) -> Callable[[Endpoint], Endpoint]:
    """`@router.get(path, **options)`, the route being a DirectRoute."""
    return direct_route(router, path, methods=["GET"], **options)
