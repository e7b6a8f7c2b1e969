"""No shell and no network listener anywhere in pynetdrv/: an AST scan of
every module.  The processes pynetdrv starts are iptables-save/-restore and modprobe (firewall/iptables.py),
through create_subprocess_exec with an argument list; any new process or
listener call fails this test until someone has looked at it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pynetdrv

PACKAGE = Path(pynetdrv.__file__).resolve().parent

#: Calls that run a command line through a shell, or replace/spawn processes.
SHELL_CALLS = {
    "os.system", "os.popen", "os.spawnl", "os.spawnlp", "os.spawnv", "os.spawnvp", "os.execl", "os.execlp",
    "os.execv", "os.execvp", "os.execve", "os.posix_spawn", "os.posix_spawnp", "pty.spawn",
    "subprocess.getoutput", "subprocess.getstatusoutput", "asyncio.create_subprocess_shell",
    "loop.subprocess_shell", "commands.getoutput",
}
#: Calls that start a process with an argument list: allowed only where listed.
PROCESS_CALLS = {"subprocess.run", "subprocess.Popen", "subprocess.call", "subprocess.check_call",
                 "subprocess.check_output", "asyncio.create_subprocess_exec"}
ALLOWED_PROCESSES = {("firewall/iptables.py", "asyncio.create_subprocess_exec"),
                     # the managed plugin's entrypoint: iptables-*-save and update-alternatives, argument lists
                     ("managed_plugin.py", "subprocess.run")}
#: Listener calls reviewed: the socket systemd passed, served only if AF_UNIX
#: (checked in systemd.serving_socket and again at the call).
ALLOWED_LISTENERS = {("daemon/http.py", "web.SockSite")}
#: Anything that would listen on an IP socket (the daemon serves a unix socket only).
LISTEN_CALLS = {"web.TCPSite", "web.run_app", "asyncio.start_server", "loop.create_server", "socket.create_server",
                "web.SockSite", "aiohttp.web.TCPSite", "aiohttp.web.run_app"}


def dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Call):
        return dotted(node.func)
    return "?"


def findings(source: str, where: str) -> list[str]:
    """Every forbidden call in ``source``, as 'where:line: what'."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = dotted(node.func)
        short = ".".join(name.split(".")[-2:])
        if name in SHELL_CALLS or short in SHELL_CALLS:
            found.append(f"{where}:{node.lineno}: shell/process call {name}")
        if (name in LISTEN_CALLS or short in LISTEN_CALLS) and (where, short) not in ALLOWED_LISTENERS:
            found.append(f"{where}:{node.lineno}: network listener {name}")
        for kw in node.keywords:
            if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                found.append(f"{where}:{node.lineno}: shell= in {name}")
        if (name in PROCESS_CALLS or short in PROCESS_CALLS) and (where, short) not in ALLOWED_PROCESSES:
            found.append(f"{where}:{node.lineno}: unreviewed process start {name}")
    return found


def modules() -> list[Path]:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20, "the scan must see the whole package"
    return files


def test_no_shell_process_or_listener_in_pynetdrv() -> None:
    problems = []
    for path in modules():
        problems += findings(path.read_text(), path.relative_to(PACKAGE).as_posix())
    assert problems == []


def test_the_one_allowed_process_is_really_there() -> None:
    """Guards the scan itself: if it stopped seeing calls, it would pass
    vacuously."""
    source = (PACKAGE / "firewall" / "iptables.py").read_text()
    calls = {dotted(n.func) for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call)}
    assert "asyncio.create_subprocess_exec" in calls


@pytest.mark.parametrize(("source", "what"), [
    ("import os\nos.system('ip link')", "shell/process call os.system"),
    ("import os\nos.popen('id').read()", "shell/process call os.popen"),
    ("import subprocess\nsubprocess.run('ls', shell=True)", "shell= in subprocess.run"),
    ("import subprocess\nsubprocess.Popen(['ls'], shell=flag)", "shell= in subprocess.Popen"),
    ("import subprocess\nsubprocess.run(['ip', 'link'])", "unreviewed process start subprocess.run"),
    ("import asyncio\nasyncio.create_subprocess_shell('x')", "shell/process call asyncio.create_subprocess_shell"),
    ("from aiohttp import web\nweb.TCPSite(runner, '0.0.0.0', 80)", "network listener web.TCPSite"),
    ("from aiohttp import web\nweb.run_app(app)", "network listener web.run_app"),
    ("import asyncio\nasyncio.start_server(cb, port=1)", "network listener asyncio.start_server"),
])
def test_the_scan_catches_each_kind(source: str, what: str) -> None:
    found = findings(source, "x.py")
    assert any(what in f for f in found), found


def test_the_scan_allows_an_argument_list_exec_in_firewall_only() -> None:
    src = "import asyncio\nasyncio.create_subprocess_exec('iptables', '-S')"
    assert findings(src, "firewall/iptables.py") == []
    assert findings(src, "driver/service.py") != []
