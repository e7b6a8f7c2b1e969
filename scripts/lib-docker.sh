# shellcheck shell=bash
# Helpers for scripts/test: make sure a Docker engine (and the test image) is there.
# Sourced, not executed. Needs root. Uses /usr/bin/docker, the client that matches
# Debian's docker.io engine (/usr/local/bin/docker may be a newer client).

DOCKER=${DOCKER:-/usr/bin/docker}
DOCKERD=${DOCKERD:-/usr/sbin/dockerd}
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/pynetdrv-test-dockerd.log}
TEST_IMAGE=${TEST_IMAGE:-local/busybox:latest}

step() { printf '==> %s\n' "$*"; }
die() { printf 'scripts/test: error: %s\n' "$*" >&2; exit 1; }

docker_answers() {
    timeout 10 "$DOCKER" info >/dev/null 2>&1
}

# Start dockerd in the background unless one already answers. No systemd here.
ensure_dockerd() {
    if docker_answers; then
        step "dockerd: already running"
        return 0
    fi
    if pidof dockerd >/dev/null 2>&1; then
        step "dockerd: running (pid $(pidof dockerd)) but not answering yet; waiting"
    else
        step "dockerd: starting $DOCKERD (log: $DOCKERD_LOG)"
        mkdir -p "$(dirname "$DOCKERD_LOG")"
        # Detached from our session and stdin so it outlives this script (and without fd 9,
        # scripts/test's lock, which it must not keep held).
        (setsid "$DOCKERD" </dev/null >>"$DOCKERD_LOG" 2>&1 9>&- &)
    fi
    local deadline=$((SECONDS + 60))
    until docker_answers; do
        if ((SECONDS >= deadline)); then
            printf 'scripts/test: error: dockerd did not answer "docker info" within 60 s; last lines of %s:\n' \
                "$DOCKERD_LOG" >&2
            tail -n 40 "$DOCKERD_LOG" >&2 || true
            exit 1
        fi
        sleep 0.5
    done
    step "dockerd: ready (pid $(pidof dockerd))"
}

# Applets the tests need inside containers; every other applet busybox lists is linked too.
BUSYBOX_APPLETS=(sh ip ping ping6 sleep nc wget true cat ls hostname ifconfig route httpd timeout)

# Import local/busybox:latest from the busybox-static binary, unless present.
ensure_busybox_image() {
    if "$DOCKER" image inspect "$TEST_IMAGE" >/dev/null 2>&1; then
        step "image: $TEST_IMAGE present"
        return 0
    fi
    [[ -x /bin/busybox ]] || die "/bin/busybox missing (apt-get install busybox-static)"
    step "image: importing $TEST_IMAGE from /bin/busybox"
    local tmp
    tmp=$(mktemp -d)
    local root="$tmp/rootfs"
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,var/www}
    chmod 1777 "$root/tmp"
    cp /bin/busybox "$root/bin/busybox"
    local applet
    for applet in "${BUSYBOX_APPLETS[@]}" $(/bin/busybox --list); do
        [[ "$applet" == busybox || -e "$root/bin/$applet" ]] || ln -s busybox "$root/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
    tar -C "$root" -c . | "$DOCKER" import \
        -c 'ENV PATH=/bin:/sbin:/usr/bin:/usr/sbin' -c 'CMD ["/bin/sh"]' \
        - "$TEST_IMAGE" >/dev/null || true
    rm -rf "$tmp"
    "$DOCKER" image inspect "$TEST_IMAGE" >/dev/null 2>&1 || die "importing $TEST_IMAGE failed"
}
