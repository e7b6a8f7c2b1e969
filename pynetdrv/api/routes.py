"""One generic adapter from ``POST /<Iface>.<Method>`` to a typed service method.

Every call goes through ``_adapt``: read the body (Docker sends no
Content-Type, and an empty body on some calls), validate it into the route's
pydantic model, call the service, encode the reply.  Errors become a non-200
status with ``{"Err": "..."}``; a path we do not serve gets aiohttp's bare 404,
which Docker reads as "not implemented".
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

Handler = Callable[[Any], Awaitable[Wire | dict[str, Any]]]


@dataclass(frozen=True)
class Route:
    """``request`` is None for calls whose body Docker leaves empty."""

    path: str
    request: type[Wire] | None
    handler: Handler


def _reply(status: int, payload: dict[str, Any]) -> web.Response:
    return web.Response(status=status, text=json.dumps(payload), content_type=CONTENT_TYPE.split(";")[0])


def _describe(err: ValidationError) -> str:
    """``NetworkID: field required; Options.x: ...`` — names each bad field."""
    parts = []
    for e in err.errors(include_url=False):
        where = ".".join(str(p) for p in e["loc"]) or "body"
        parts.append(f"{where}: {e['msg']}")
    return "; ".join(parts)


def _decode(route: Route, body: bytes) -> Any:
    if route.request is None:
        return None
    data = json.loads(body) if body.strip() else {}
    if not isinstance(data, dict):
        raise TypeError(f"expected a JSON object, got {type(data).__name__}")
    return route.request.model_validate(data)


def _adapt(route: Route) -> Callable[[web.Request], Awaitable[web.Response]]:
    name = route.path.lstrip("/")

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            req = _decode(route, body)
        except ValidationError as e:
            return _reply(400, {"Err": f"invalid {name} request: {_describe(e)}"})
        except (ValueError, TypeError) as e:  # json.JSONDecodeError is a ValueError
            return _reply(400, {"Err": f"malformed {name} request body: {e}"})
        try:
            resp = await route.handler(req)
        except PynetdrvError as e:
            log.warning("%s failed: %s", name, e)
            return _reply(e.status, {"Err": str(e)})
        except Exception as e:
            log.exception("%s failed unexpectedly", name)
            return _reply(500, {"Err": f"{name}: internal error: {e!r}"})
        payload = resp.model_dump(mode="json") if isinstance(resp, Wire) else resp
        log.debug("%s -> %s", name, payload)
        return _reply(200, payload)

    return handle


def add_routes(app: web.Application, routes: list[Route]) -> None:
    for route in routes:
        app.router.add_post(route.path, _adapt(route))
