"""``pynetdrv check`` of a managed plugin: Docker's networks name the driver
``NAME:TAG`` (``pynetdrv/pynetdrv:latest``), not the instance (the stem of the
plugin's socket), and must still be matched as ours."""

from __future__ import annotations

import dataclasses

from check_world import NET, FakeEngine, World, bridge

from pynetdrv.check import run_checks
from pynetdrv.check.command import check
from pynetdrv.check.docker_view import read_docker_view

PLUGIN = "pynetdrv/pynetdrv:latest"


async def findings(world: World, driver_names: tuple[str, ...]) -> list[str]:
    opts = dataclasses.replace(world.opts(), driver_names=driver_names)
    result = await check(opts, world.kernel)
    result.ctx.docker = world.docker_view(driver=PLUGIN, ipam_driver=PLUGIN)
    return [f.line() for f in await run_checks(result.ctx)]


async def test_networks_of_the_plugins_name_are_ours(world: World) -> None:
    assert await findings(world, (PLUGIN,)) == []


async def test_without_the_plugins_name_they_look_foreign(world: World) -> None:
    """What check said before it knew the name: the network an orphan."""
    lines = await findings(world, ())
    assert lines == [f"orphan network {NET[:12]}: in the state (bridge {bridge(world)}), unknown to Docker"]


async def test_docker_view_asks_for_every_name(world: World, engine: FakeEngine) -> None:
    engine.serve(world, driver=PLUGIN, ipam_driver=PLUGIN)
    assert (await read_docker_view("pynetdrv", engine.sock)).networks == ()
    view = await read_docker_view(("pynetdrv-plugin", PLUGIN), engine.sock)
    assert [n.network_id for n in view.networks] == [NET]
