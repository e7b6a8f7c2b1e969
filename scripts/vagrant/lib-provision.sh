# shellcheck shell=bash
# Sourced by the Vagrant lab's provisioners (scripts/vagrant/provision-*.sh), inside a VM.

# need_packages OFFLINE PKG...: with OFFLINE=1 the box must carry them (no network in the VM);
# otherwise apt-get installs what is missing.
need_packages() {
    local offline="$1" missing=() p
    shift
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    [ "${#missing[@]}" = 0 ] && return 0
    if [ "$offline" = 1 ]; then
        echo "provision: the box lacks ${missing[*]} and this VM installs nothing from the network" >&2
        return 1
    fi
    echo "provision: apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# wait_for WHAT SECONDS CMD...: run CMD until it succeeds, at most SECONDS; say how long it took.
wait_for() {
    local what="$1" limit="$2" start=$SECONDS
    shift 2
    until "$@" >/dev/null 2>&1; do
        if [ $((SECONDS - start)) -ge "$limit" ]; then
            echo "provision: $what: not after ${limit}s" >&2
            "$@" || true
            return 1
        fi
        sleep 2
    done
    echo "provision: $what ($((SECONDS - start))s)"
}
