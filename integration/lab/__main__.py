"""python -m integration.lab up|status|test|down [--engine 20.10|28.5] [--mode cluster|single]"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from integration.lab import lab
from integration.lab.topology import LabError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/lab", description="one-machine 3-host pynetdrv lab")
    p.add_argument("command", choices=("up", "status", "test", "down"))
    p.add_argument("--engine", default=None, help="docker engine: 20.10 (default) or 28.5 (env PNLAB_ENGINE)")
    p.add_argument("--mode", default=None, choices=("cluster", "single"),
                   help="pynetdrv on etcd across the hosts (cluster, default) or one SQLite per host (env PNLAB_MODE)")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("scripts/lab needs root", file=sys.stderr)
        return 2
    try:
        if args.command == "up":
            t = time.monotonic()
            lab.up(args.engine, args.mode)
            print(f"lab up in {time.monotonic() - t:.1f}s")
            args.command = "status"
        if args.command == "status":
            ok, lines = lab.status()
            print("\n".join(lines))
            return 0 if ok else 1
        if args.command == "down":
            problems = lab.down()
            print("\n".join(problems) if problems else "lab down: nothing left")
            return 1 if problems else 0
        env = dict(os.environ, **({"PNLAB_ENGINE": args.engine} if args.engine else {}))
        return subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                "integration/test_lab.py", "integration/test_lab_cluster.py"], env=env)
    except LabError as e:
        print(f"lab: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
