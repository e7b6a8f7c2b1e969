"""The test image local/busybox:latest, imported into an engine from the machine's static
busybox (no registry is reachable here): a rootfs with bin/busybox and its applets linked."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from integration.constants import IMAGE

BUSYBOX = Path("/bin/busybox")
# Applets the tests need inside containers; every other applet busybox lists is linked too.
APPLETS = ("sh", "ip", "ping", "ping6", "sleep", "nc", "wget", "true", "cat", "ls", "hostname", "ifconfig",
           "route", "httpd", "timeout")


class ImageError(RuntimeError):
    """The test image could not be imported; the message says why."""


def ensure_busybox_image(client: Path, say: Callable[[str], None] = print) -> None:
    """Import IMAGE into the engine `client` talks to, unless it is there."""
    if _present(client):
        say(f"image: {IMAGE} present")
        return
    if not BUSYBOX.is_file():
        raise ImageError(f"{BUSYBOX} missing (apt-get install busybox-static)")
    say(f"image: importing {IMAGE} from {BUSYBOX}")
    listed = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True, timeout=30)
    with tempfile.TemporaryDirectory(prefix="pynetdrv-image.") as tmp:
        root = Path(tmp) / "rootfs"
        for sub in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root", "var/www"):
            (root / sub).mkdir(parents=True)
        (root / "tmp").chmod(0o1777)
        (root / "bin" / "busybox").write_bytes(BUSYBOX.read_bytes())
        (root / "bin" / "busybox").chmod(0o755)
        for applet in (*APPLETS, *listed.stdout.split()):
            link = root / "bin" / applet
            if applet != "busybox" and "/" not in applet and not link.is_symlink():
                link.symlink_to("busybox")
        (root / "etc" / "passwd").write_text(
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
        )
        (root / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run([str(client), "import", "-c", "ENV PATH=/bin:/sbin:/usr/bin:/usr/sbin",
                                   "-c", 'CMD ["/bin/sh"]', "-", IMAGE], stdin=tar.stdout, capture_output=True,
                                  text=True, timeout=300, check=False)
        assert tar.stdout is not None
        tar.stdout.close()
        tar.wait(60)
    if not _present(client):
        raise ImageError(f"importing {IMAGE} failed: {imported.stderr.strip()[:400]}")


def _present(client: Path) -> bool:
    return subprocess.run([str(client), "image", "inspect", IMAGE], capture_output=True, timeout=60,
                          check=False).returncode == 0
