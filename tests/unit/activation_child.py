"""A tiny socket-activated program for test_systemd: takes its listening socket
with pynetdrv.systemd.listen_fds(), answers one connection with what it got
(names, whether the variables were removed), then exits."""

import json
import os
import sys

from pynetdrv.systemd import listen_fds, unix_listener

taken = listen_fds()
listener = unix_listener(taken)
if listener is None:
    print("activation_child: no socket was passed", file=sys.stderr)
    sys.exit(3)
conn, _ = listener.accept()
with conn:
    conn.sendall(json.dumps({
        "names": [s.name for s in taken],
        "left": sorted(k for k in os.environ if k.startswith("LISTEN_")),
        "inheritable": [os.get_inheritable(s.sock.fileno()) for s in taken],
        "fds": [s.sock.fileno() for s in taken],
    }).encode())
