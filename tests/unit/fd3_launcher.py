"""A stand-in for systemd's socket passing: ``fd3_launcher.py FD NAME PROGRAM...``
puts FD at 3, sets LISTEN_PID (this process: exec keeps it), LISTEN_FDS=1 and
LISTEN_FDNAMES=NAME, then execs PROGRAM."""

import os
import sys

fd, name, *program = sys.argv[1:]
if int(fd) != 3:
    os.dup2(int(fd), 3)
    os.close(int(fd))
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1", LISTEN_FDNAMES=name)
os.execv(program[0], program)
