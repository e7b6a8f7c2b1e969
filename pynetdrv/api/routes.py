"""One generic adapter from ``POST /<Iface>.<Method>`` to a typed service method.

Every call goes through ``_adapt``: read the body (Docker sends no
Content-Type, and an empty body on some calls), validate it into the route's
pydantic model, call the service, encode the reply.  Errors become a non-200
status with ``{"Err": "..."}``.

Every other answer is JSON too (``json_errors``): a path we do not serve is a
404 (Docker reads any 404 as "not implemented", whatever the body), a GET is a
405, a body over ``MAX_BODY`` is a 413 naming the limit.

Calls pass a ``Gate`` first: the daemon binds its socket before it has
reconciled the kernel with the state, so that Docker's static
``/Plugin.Activate`` is answered at once; every other call waits at the gate
until the daemon is ready and then runs as it always did.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from pynetdrv.errors import PynetdrvError

if TYPE_CHECKING:
    # Not imported at run time: the socket answers /Plugin.Activate before
    # pydantic and the wire models are loaded (server.serve).
    from pydantic import ValidationError

    from pynetdrv.api.base_model import Wire

log = logging.getLogger(__name__)

#: The media type of the plugin protocol; Docker ignores it but it is correct.
CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"

#: Largest request body read (aiohttp ``client_max_size``).  The largest call
#: in the recorded traces is 563 bytes (CreateEndpoint with three published
#: ports); each published port adds about 110 bytes (an exposedports and a
#: portmap entry), so 1 MiB still takes a container publishing ~9,000 ports.
MAX_BODY = 1024 * 1024

#: Deepest JSON nesting accepted.  Docker's deepest body is 4 levels
#: (CreateEndpoint Options.portmap[i].Port); this leaves room for new fields
#: while keeping recursive code (dataclasses.asdict, json.dumps) far from
#: Python's recursion limit.
MAX_DEPTH = 32

#: Longest error message sent: messages quote the offending value, which may
#: be most of a 1 MiB body.
MAX_ERR = 2000

Handler = Callable[[Any], Awaitable["Wire | dict[str, Any]"]]
HttpHandler = Callable[[web.Request], Awaitable[web.Response]]


@dataclass(frozen=True)
class Route:
    """``request`` is None for calls whose body Docker leaves empty."""

    path: str
    request: type[Wire] | None
    handler: Handler


def _reply(status: int, payload: dict[str, Any]) -> web.Response:
    return web.Response(status=status, text=json.dumps(payload), content_type=CONTENT_TYPE.split(";")[0])


def _error(status: int, message: str) -> web.Response:
    if len(message) > MAX_ERR:
        message = message[:MAX_ERR] + f"... ({len(message) - MAX_ERR} more characters)"
    return _reply(status, {"Err": message})


def _http_error_message(request: web.Request, e: web.HTTPException) -> str:
    path = request.path[:200]
    if isinstance(e, web.HTTPNotFound):
        return f"pynetdrv does not implement {path}"
    if isinstance(e, web.HTTPMethodNotAllowed):
        return f"{request.method[:20]} {path}: the plugin protocol uses POST only"
    if isinstance(e, web.HTTPRequestEntityTooLarge):
        return f"{path}: request body too large: the limit is {MAX_BODY} bytes ({MAX_BODY // 1024} KiB)"
    return f"{path}: {e.reason}"


@web.middleware
async def json_errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                      ) -> web.StreamResponse:
    """Answers aiohttp makes itself (404, 405, 413) as ``{"Err"}`` JSON, and a
    last guard so that nothing ever leaves as a bare text 500."""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return _error(e.status, _http_error_message(request, e))
    except Exception as e:
        log.exception("%s failed unexpectedly", request.path)
        return _error(500, f"{request.path[:200]}: internal error: {type(e).__name__}: {e}")


def _describe(err: ValidationError) -> str:
    """``NetworkID: field required; Options.x: ...`` — names each bad field."""
    parts = []
    for e in err.errors(include_url=False):
        where = ".".join(str(p) for p in e["loc"]) or "body"
        parts.append(f"{where}: {e['msg']}")
    return "; ".join(parts)


def _bad_request(name: str, e: ValueError | TypeError) -> str:
    """A body that is not a valid request names each bad field; one that is
    not even JSON says so."""
    from pydantic import ValidationError

    if isinstance(e, ValidationError):
        return f"invalid {name} request: {_describe(e)}"
    return f"malformed {name} request body: {e}"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _check_depth(data: Any) -> None:
    level = [data]
    for _ in range(MAX_DEPTH + 1):
        level = [v for x in level for v in (x.values() if isinstance(x, dict) else x if isinstance(x, list) else ())]
        if not level:
            return
    raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels")


def _decode(route: Route, body: bytes) -> Any:
    if route.request is None:
        return None
    try:
        data = json.loads(body, parse_constant=_no_constant) if body.strip() else {}
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    if not isinstance(data, dict):
        raise TypeError(f"expected a JSON object, got {type(data).__name__}")
    _check_depth(data)
    return route.request.model_validate(data)


def _adapt(route: Route) -> HttpHandler:
    name = route.path.lstrip("/")

    async def handle(request: web.Request) -> web.Response:
        try:
            body = await request.read()
        except web.RequestPayloadError as e:  # e.g. a chunked body cut short
            return _error(400, f"{name}: could not read the request body: {e}")
        try:
            req = _decode(route, body)
        except (ValueError, TypeError) as e:  # pydantic's ValidationError, JSONDecodeError, UnicodeDecodeError
            return _error(400, _bad_request(name, e))
        t0 = time.perf_counter()
        try:
            resp = await route.handler(req)
        except PynetdrvError as e:
            log.warning("%s failed after %.1f ms: %s", name, (time.perf_counter() - t0) * 1000, e)
            return _error(e.status, str(e))
        except Exception as e:
            log.exception("%s failed unexpectedly", name)
            return _error(500, f"{name}: internal error: {e!r}")
        payload = resp if isinstance(resp, dict) else resp.model_dump(mode="json")
        log.debug("%s -> %s (%.1f ms)", name, payload, (time.perf_counter() - t0) * 1000)
        return _reply(200, payload)

    return handle


class Gate:
    """Where calls wait until the daemon is ready: ``open`` gives the route
    table (after start-up reconcile), ``fail`` a reason if start-up failed
    (waiting calls then get a 503 naming it).  Created closed."""

    def __init__(self) -> None:
        self._ready = asyncio.Event()
        self._handlers: dict[str, HttpHandler] = {}
        self._failure = ""

    @property
    def is_open(self) -> bool:
        return self._ready.is_set() and not self._failure

    def open(self, routes: list[Route]) -> None:
        self._handlers = {route.path: _adapt(route) for route in routes}
        self._ready.set()

    def fail(self, reason: str) -> None:
        self._failure = reason or "start-up failed"
        self._ready.set()

    def handler(self, path: str) -> HttpHandler:
        name = path.lstrip("/")

        async def handle(request: web.Request) -> web.Response:
            await self._ready.wait()
            adapted = self._handlers.get(path)
            if adapted is None:
                return _error(503, f"{name}: pynetdrv is not serving: {self._failure or 'no handler for this call'}")
            return await adapted(request)

        return handle


def add_routes(app: web.Application, paths: Sequence[str], gate: Gate, early: Sequence[Route] = ()) -> None:
    """Serve ``paths``: ``early`` routes at once, the others through ``gate``."""
    app.middlewares.append(json_errors)
    now = {route.path: route for route in early}
    for path in dict.fromkeys([*now, *paths]):
        app.router.add_post(path, _adapt(now[path]) if path in now else gate.handler(path))


def add_open_routes(app: web.Application, routes: list[Route]) -> None:
    """Serve ``routes``, all ready now."""
    gate = Gate()
    add_routes(app, [route.path for route in routes], gate)
    gate.open(routes)
