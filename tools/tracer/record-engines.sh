#!/usr/bin/env bash
# Record the wire fixtures (tests/fixtures/traces/docker-<engine>-{calls,daemon-restart}.jsonl)
# with the tracer against every engine the suite runs on: the machine's dockerd (20.10), then
# each engine scripts/lib-engines.sh can start (26.1, and 28.5 once it has start_engine_28_5)
# whose unpacked copy is under /opt/pynetdrv-engines. Each runs alone on the default socket:
# the machine's dockerd is stopped meanwhile and started again at the end, as it was.
# Holds the integration lock (/run/lock/pynetdrv-integration.lock) throughout. Needs root and
# the repo's .venv. Usage: sudo tools/tracer/record-engines.sh [ENGINE...]  (default: all)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
# The engines as Python (integration/engines.py): that module starts and stops them.
if [[ -f integration/engines.py ]]; then
    exec "$REPO/.venv/bin/python" -m tools.tracer.engines "$@"
fi
# shellcheck source=scripts/lib-docker.sh
source scripts/lib-docker.sh
# shellcheck source=scripts/lib-engines.sh
source scripts/lib-engines.sh
[[ $(id -u) -eq 0 ]] || die "must run as root"
PY=$REPO/.venv/bin/python
[[ -x $PY ]] || die "$PY missing: python3 -m venv .venv && .venv/bin/pip install -e '.[test]'"
OUT=$REPO/tests/fixtures/traces
wanted=("$@")
((${#wanted[@]})) || wanted=(20.10 26.1 28.5)

LOCK=/run/lock/pynetdrv-integration.lock
if [[ -z ${PYNETDRV_IT_LOCK_HELD:-} ]]; then
    mkdir -p "$(dirname "$LOCK")"
    exec 9>>"$LOCK"
    flock -n 9 || { step "lock: waiting for $LOCK (another integration run holds it)"; flock -w 1800 9 || die "lock"; }
    export PYNETDRV_IT_LOCK_HELD=$$
fi

record_engine() {  # ENGINE CLIENT
    local engine=$1 client=$2
    DOCKER=$client ensure_busybox_image
    for scenario in calls daemon-restart; do
        step "tracer: Docker $(server_version "$client") (engine $engine), scenario $scenario"
        "$PY" -m tools.tracer record --docker "$client" --scenario "$scenario" \
            --out "$OUT/docker-$engine-$scenario.jsonl"
    done
}

other_engine_running=""
finish() {
    local rc=$?
    if [[ -n $other_engine_running ]]; then "stop_engine_${other_engine_running//./_}" || true; fi
    restore_system_dockerd
    exit "$rc"
}

record_system_dockerd
trap finish EXIT
for engine in "${wanted[@]}"; do
    if [[ $engine == 20.10 ]]; then
        ensure_dockerd
        record_engine 20.10 "$DOCKER"
        continue
    fi
    fn=${engine//./_}
    client=$ENGINES_DIR/docker-$engine/bin/docker
    if ! declare -F "start_engine_$fn" >/dev/null || [[ ! -x $client ]]; then
        step "tracer: engine $engine skipped: no start_engine_$fn in scripts/lib-engines.sh or no $client"
        continue
    fi
    stop_system_dockerd
    other_engine_running=$engine
    "start_engine_$fn"
    record_engine "$engine" "$client"
    "stop_engine_$fn"
    other_engine_running=""
done
