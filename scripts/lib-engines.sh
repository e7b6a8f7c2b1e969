# shellcheck shell=bash
# Helpers for scripts/test: the Docker engines the integration suite runs against, one at a
# time, all on the default socket /var/run/docker.sock. Sourced after lib-docker.sh. Needs root.
#
#   20.10  The machine's engine: Debian bookworm's docker.io (/usr/sbin/dockerd, client
#          /usr/bin/docker), or whichever dockerd already serves the default socket.
#   26.1   Debian trixie's docker.io 26.1.5 (dockerd, docker-proxy), containerd and docker-cli,
#          fetched with a private apt configuration (the machine's apt sources, lists and
#          cache are left alone) and unpacked with `dpkg -x` into /opt/pynetdrv-engines/docker-26.1
#          (kept as a cache). It runs with bookworm's runc (trixie's needs a newer glibc) and
#          docker-init, with its own --data-root, --exec-root and --pidfile, and a PATH that
#          puts its own bin dir first, so the containerd it spawns is trixie's.

ENGINES_DIR=${PYNETDRV_ENGINES_DIR:-/opt/pynetdrv-engines}
E26_DIR=$ENGINES_DIR/docker-26.1
E26_BIN=$E26_DIR/bin
E26_DATA_ROOT=/var/lib/pynetdrv-docker-26.1
E26_EXEC_ROOT=/var/run/pynetdrv-docker-26.1
E26_PIDFILE=/var/run/pynetdrv-docker-26.1.pid
E26_LOG=/var/log/pynetdrv-test-dockerd-26.1.log
E26_PATH="$E26_BIN:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
E26_PACKAGES=(docker.io containerd docker-cli)
E26_SUITE=trixie
E26_WANT_VERSION=26.1.

# ---- processes ------------------------------------------------------------------------------

# Is PID gone (no such process, or a zombie waiting to be reaped)?
pid_gone() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    stat=${stat##*) }
    [[ ${stat%% *} == [ZX] ]]
}

# The --exec-root of the dockerd PID (dockerd's default if it has none).
dockerd_exec_root() {
    local -a args
    local i root=/var/run/docker
    mapfile -d '' args <"/proc/$1/cmdline" 2>/dev/null || return 1
    for ((i = 0; i < ${#args[@]}; i++)); do
        case ${args[i]} in
            --exec-root) root=${args[i + 1]:-$root} ;;
            --exec-root=*) root=${args[i]#*=} ;;
        esac
    done
    readlink -m "$root"
}

# pids of the dockerds whose exec-root is $1 (resolved), one a line.
dockerds_with_exec_root() {
    local want pid
    want=$(readlink -m "$1")
    for pid in $(pidof dockerd 2>/dev/null); do
        [[ $(dockerd_exec_root "$pid") == "$want" ]] && echo "$pid"
    done
    return 0
}

children_of() {
    local f stat
    for f in /proc/[0-9]*/stat; do
        stat=$(cat "$f" 2>/dev/null) || continue
        stat=${stat##*) }
        read -r _ ppid _ <<<"$stat"
        [[ $ppid == "$1" ]] && { f=${f#/proc/}; echo "${f%/stat}"; }
    done
    return 0
}

# Stop a dockerd: SIGTERM (it stops its containers and its managed containerd), wait up to
# 60 s, then SIGKILL; then wait for its children (containerd) to be gone as well.
stop_dockerd_pid() {
    local pid=$1 what=$2 kids deadline kid
    kids=$(children_of "$pid")
    step "$what: stopping dockerd (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || return 0
    deadline=$((SECONDS + 60))
    until pid_gone "$pid"; do
        if ((SECONDS >= deadline)); then
            step "$what: dockerd $pid did not exit within 60 s of SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            deadline=$((SECONDS + 10))
            until pid_gone "$pid" || ((SECONDS >= deadline)); do sleep 0.2; done
            break
        fi
        sleep 0.2
    done
    pid_gone "$pid" || die "$what: dockerd $pid does not exit"
    deadline=$((SECONDS + 20))
    for kid in $kids; do
        until pid_gone "$kid"; do
            if ((SECONDS >= deadline)); then
                step "$what: child $kid of dockerd $pid still running after 20 s; sending SIGKILL"
                kill -KILL "$kid" 2>/dev/null || true
                sleep 1
                break
            fi
            sleep 0.2
        done
    done
}

# Drop pid files that name a dead (or zombie) process: dockerd refuses to start on a pid file
# naming a live-looking process, and its managed containerd's under <exec-root>/containerd too.
remove_stale_pidfiles() {
    local f pid
    for f in "$@"; do
        pid=$(cat "$f" 2>/dev/null) || continue
        if [[ -z $pid || ! $pid =~ ^[0-9]+$ ]] || pid_gone "$pid"; then
            rm -f "$f"
        fi
    done
}

wait_docker_answers() {  # CLIENT LOG WHAT
    local deadline=$((SECONDS + 60))
    until timeout 10 "$1" info >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            printf 'scripts/test: error: %s did not answer "docker info" within 60 s; last lines of %s:\n' \
                "$3" "$2" >&2
            tail -n 40 "$2" >&2 || true
            exit 1
        fi
        sleep 0.5
    done
}

server_version() {  # CLIENT
    timeout 10 "$1" version --format '{{.Server.Version}}' 2>/dev/null || echo unknown
}

# ---- the machine's engine ("20.10"): remember it, stop it, bring it back -------------------

SYSTEM_DOCKERD_WAS_RUNNING=0
SYSTEM_DOCKERD_VIA_SYSTEMD=0
SYSTEM_DOCKERD_CMD=()
SYSTEM_DOCKERD_ENV=()
SYSTEM_DOCKERD_LOG=$DOCKERD_LOG

system_dockerd_pid() {
    dockerds_with_exec_root /var/run/docker | head -n 1
}

# Remember how the machine's dockerd runs now (command line, environment, log), so that
# restore_system_dockerd can start it again exactly like that after the other engines ran.
record_system_dockerd() {
    local pid target
    pid=$(system_dockerd_pid)
    [[ -n $pid ]] || return 0
    SYSTEM_DOCKERD_WAS_RUNNING=1
    if [[ -d /run/systemd/system ]] && systemctl is-active --quiet docker.service 2>/dev/null; then
        SYSTEM_DOCKERD_VIA_SYSTEMD=1
    fi
    mapfile -d '' SYSTEM_DOCKERD_CMD <"/proc/$pid/cmdline"
    mapfile -d '' SYSTEM_DOCKERD_ENV <"/proc/$pid/environ"
    target=$(readlink "/proc/$pid/fd/1" 2>/dev/null || true)
    [[ $target == /* && -f $target ]] && SYSTEM_DOCKERD_LOG=$target
    return 0
}

stop_system_dockerd() {
    local pid
    pid=$(system_dockerd_pid)
    [[ -n $pid ]] || return 0
    if ((SYSTEM_DOCKERD_VIA_SYSTEMD)); then
        step "engine 20.10: stopping docker.service (systemd)"
        systemctl stop docker.socket docker.service || systemctl stop docker.service || true
    fi
    pid=$(system_dockerd_pid)
    [[ -z $pid ]] || stop_dockerd_pid "$pid" "engine 20.10"
}

# Start the machine's dockerd again if it ran before scripts/test began (a developer's box is
# left as it was found); on a fresh machine nothing is left running.
restore_system_dockerd() {
    ((SYSTEM_DOCKERD_WAS_RUNNING)) || return 0
    [[ -z $(system_dockerd_pid) ]] || return 0
    if ((SYSTEM_DOCKERD_VIA_SYSTEMD)); then
        step "engine 20.10: starting docker.service again (it ran before scripts/test)"
        systemctl start docker.socket docker.service || true
    else
        step "engine 20.10: starting the dockerd that ran before scripts/test again: ${SYSTEM_DOCKERD_CMD[*]} (log: $SYSTEM_DOCKERD_LOG)"
        remove_stale_pidfiles /var/run/docker.pid /var/run/docker/containerd/containerd.pid
        (setsid env -i "${SYSTEM_DOCKERD_ENV[@]}" "${SYSTEM_DOCKERD_CMD[@]}" \
            </dev/null >>"$SYSTEM_DOCKERD_LOG" 2>&1 9>&- &)
    fi
    wait_docker_answers "$DOCKER" "$SYSTEM_DOCKERD_LOG" "the restored dockerd"
    step "engine 20.10: Docker $(server_version "$DOCKER") running again (pid $(system_dockerd_pid))"
}

# ---- Docker 26.1 from Debian trixie ---------------------------------------------------------

# The Debian mirror the machine's apt already uses for bookworm (deb.debian.org by default;
# override with PYNETDRV_DEBIAN_MIRROR).
debian_mirror() {
    if [[ -n ${PYNETDRV_DEBIAN_MIRROR:-} ]]; then
        echo "$PYNETDRV_DEBIAN_MIRROR"
        return 0
    fi
    python3 - <<'PY'
import glob, re
uris = []
def consider(types, uris_, suites, enabled=True):
    if enabled and "deb" in types and "bookworm" in suites:
        uris.extend(u for u in uris_ if re.match(r"https?://", u))
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        line = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
        if len(line) >= 3:
            consider([line[0]], [line[1]], [line[2]])
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    try:
        text = open(path).read()
    except OSError:
        continue
    for stanza in re.split(r"\n\s*\n", text):
        fields = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.split()
        consider(fields.get("types", []), fields.get("uris", []), fields.get("suites", []),
                 fields.get("enabled", ["yes"])[0].lower() != "no")
print((uris or ["http://deb.debian.org/debian"])[0].rstrip("/"))
PY
}

engine_26_1_cached() {
    [[ -f $E26_DIR/.complete && -x $E26_BIN/dockerd && -x $E26_BIN/docker && -x $E26_BIN/containerd ]]
}

# Download and unpack Docker 26.1 unless the unpacked copy is there already.
ensure_engine_26_1() {
    if engine_26_1_cached; then
        step "engine 26.1: using $E26_DIR ($(tr '\n' ' ' <"$E26_DIR/.complete"))"
        return 0
    fi
    local started=$SECONDS mirror tmp keyring=/usr/share/keyrings/debian-archive-keyring.gpg deb version
    mirror=$(debian_mirror)
    step "engine 26.1: downloading ${E26_PACKAGES[*]} from Debian $E26_SUITE ($mirror) into $E26_DIR"
    [[ -r $keyring ]] || die "$keyring missing (apt-get install debian-archive-keyring)"
    tmp=$(mktemp -d /tmp/pynetdrv-engines.XXXXXX)
    mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/debs"
    echo "deb [signed-by=$keyring] $mirror $E26_SUITE main" >"$tmp/sources.list"
    # A private apt configuration: its own sources list, lists and cache; nothing of the
    # machine's apt state is read or changed (proxy settings in apt.conf.d still apply).
    local -a apt_opts=(
        -o "Dir::Etc::SourceList=$tmp/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache"
        -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=
        -o APT::Sandbox::User=root -o Acquire::Retries=3
    )
    if ! apt-get "${apt_opts[@]}" -qq update >"$tmp/apt.log" 2>&1 ||
        ! (cd "$tmp/debs" && apt-get "${apt_opts[@]}" -qq download "${E26_PACKAGES[@]}") >>"$tmp/apt.log" 2>&1; then
        cat "$tmp/apt.log" >&2
        rm -rf "$tmp"
        die "could not download ${E26_PACKAGES[*]} from $mirror $E26_SUITE"
    fi
    version=$(dpkg-deb -f "$tmp"/debs/docker.io_*.deb Version)
    if [[ $version != "$E26_WANT_VERSION"* ]]; then
        rm -rf "$tmp"
        die "Debian $E26_SUITE has docker.io $version, expected $E26_WANT_VERSION*"
    fi
    rm -rf "$E26_DIR.new"
    mkdir -p "$E26_DIR.new/root" "$E26_DIR.new/bin"
    for deb in "$tmp"/debs/*.deb; do
        dpkg -x "$deb" "$E26_DIR.new/root"
        printf '%s=%s\n' "$(dpkg-deb -f "$deb" Package)" "$(dpkg-deb -f "$deb" Version)" >>"$E26_DIR.new/.complete.tmp"
    done
    # Only these binaries are used. runc and docker-init stay bookworm's: trixie's runc needs a
    # newer glibc (it is not even downloaded), and the runc link here puts bookworm's first.
    local r=$E26_DIR/root
    ln -s "$r/usr/sbin/dockerd" "$r/usr/sbin/docker-proxy" "$r/usr/bin/containerd" \
        "$r/usr/bin/containerd-shim-runc-v2" "$r/usr/bin/docker" "$E26_DIR.new/bin/"
    ln -s /usr/sbin/runc "$E26_DIR.new/bin/runc"
    [[ -e /usr/bin/tini-static ]] && ln -s /usr/bin/tini-static "$E26_DIR.new/bin/docker-init"
    rm -rf "$tmp" "$E26_DIR"
    mv "$E26_DIR.new" "$E26_DIR"
    "$E26_BIN/dockerd" --version >/dev/null 2>&1 || die "$E26_BIN/dockerd does not run on this machine"
    "$E26_BIN/containerd" --version >/dev/null 2>&1 || die "$E26_BIN/containerd does not run on this machine"
    "$E26_BIN/docker" --version >/dev/null 2>&1 || die "$E26_BIN/docker does not run on this machine"
    mv "$E26_DIR/.complete.tmp" "$E26_DIR/.complete"
    step "engine 26.1: $(tr '\n' ' ' <"$E26_DIR/.complete")unpacked in $((SECONDS - started)) s"
}

engine_26_1_pid() {
    dockerds_with_exec_root "$E26_EXEC_ROOT" | head -n 1
}

start_engine_26_1() {
    local pid
    pid=$(engine_26_1_pid)
    if [[ -z $pid ]]; then
        [[ -z $(system_dockerd_pid) ]] || die "engine 26.1: the machine's dockerd still runs"
        ! timeout 10 "$E26_BIN/docker" info >/dev/null 2>&1 ||
            die "engine 26.1: another dockerd answers on /var/run/docker.sock (pids: $(pidof dockerd)); stop it first"
        step "engine 26.1: starting $E26_BIN/dockerd (log: $E26_LOG)"
        remove_stale_pidfiles "$E26_PIDFILE" "$E26_EXEC_ROOT/containerd/containerd.pid"
        mkdir -p "$(dirname "$E26_LOG")"
        # A clean, explicit environment: the integration tests restart this dockerd with the
        # command line and environment they read from /proc.
        (setsid env -i PATH="$E26_PATH" HOME=/root LANG=C.UTF-8 \
            "$E26_BIN/dockerd" --data-root "$E26_DATA_ROOT" --exec-root "$E26_EXEC_ROOT" \
            --pidfile "$E26_PIDFILE" </dev/null >>"$E26_LOG" 2>&1 9>&- &)
    fi
    wait_docker_answers "$E26_BIN/docker" "$E26_LOG" "dockerd 26.1"
}

stop_engine_26_1() {
    local pid
    pid=$(engine_26_1_pid)
    [[ -z $pid ]] || stop_dockerd_pid "$pid" "engine 26.1"
}
