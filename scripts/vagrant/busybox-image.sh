#!/usr/bin/env bash
# The demo image local/busybox:latest, imported into this node's Docker from busybox-static (no
# registry): the same rootfs as integration/busybox_image.py (bin/busybox, every applet linked).
set -euo pipefail
image=local/busybox:latest
if docker image inspect "$image" >/dev/null 2>&1; then
    echo "image: $image present"
    exit 0
fi
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,var/www}
chmod 1777 "$root/tmp"
install -m 0755 /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
tar -C "$root" -c . | docker import -c 'ENV PATH=/bin:/sbin:/usr/bin:/usr/sbin' -c 'CMD ["/bin/sh"]' - "$image" >/dev/null
docker image inspect "$image" >/dev/null
echo "image: $image imported from /bin/busybox"
