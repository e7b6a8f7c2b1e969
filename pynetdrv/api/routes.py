"""One generic adapter from ``POST /<Iface>.<Method>`` to a typed service method.

Every call goes through ``_adapt``: read the body (Docker sends no
Content-Type, and an empty body on some calls), validate it into the route's
pydantic model, call the service, encode the reply.  Errors become a non-200
status with ``{"Err": "..."}``.

Every other answer is JSON too (``json_errors``): a path we do not serve is a
404 (Docker reads any 404 as "not implemented", whatever the body), a GET is a
405, a body over ``MAX_BODY`` is a 413 naming the limit.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from pynetdrv.api.base_model import Wire
from pynetdrv.errors import PynetdrvError

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

Handler = Callable[[Any], Awaitable[Wire | dict[str, Any]]]


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


def _adapt(route: Route) -> Callable[[web.Request], Awaitable[web.Response]]:
    name = route.path.lstrip("/")

    async def handle(request: web.Request) -> web.Response:
        try:
            body = await request.read()
        except web.RequestPayloadError as e:  # e.g. a chunked body cut short
            return _error(400, f"{name}: could not read the request body: {e}")
        try:
            req = _decode(route, body)
        except ValidationError as e:
            return _error(400, f"invalid {name} request: {_describe(e)}")
        except (ValueError, TypeError) as e:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            return _error(400, f"malformed {name} request body: {e}")
        try:
            resp = await route.handler(req)
        except PynetdrvError as e:
            log.warning("%s failed: %s", name, e)
            return _error(e.status, str(e))
        except Exception as e:
            log.exception("%s failed unexpectedly", name)
            return _error(500, f"{name}: internal error: {e!r}")
        payload = resp.model_dump(mode="json") if isinstance(resp, Wire) else resp
        log.debug("%s -> %s", name, payload)
        return _reply(200, payload)

    return handle


def add_routes(app: web.Application, routes: list[Route]) -> None:
    app.middlewares.append(json_errors)
    for route in routes:
        app.router.add_post(route.path, _adapt(route))
