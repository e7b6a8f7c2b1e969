# Sourced by scripts/serve and scripts/test: create ./.venv and install the
# project into it, again only when pyproject.toml changed (or the install is
# broken).  Usage: ensure_venv EXTRAS   (e.g. "" or "test")
ensure_venv() {
    local extras="$1" spec="." stamp want check="import pynetdrv"
    [ -n "$extras" ] && spec=".[$extras]"
    [ "$extras" = test ] && check="import pynetdrv, pytest, hypothesis, xdist, pytest_cov"
    [ "$extras" = dev ] && check="import pynetdrv, pytest, hypothesis, xdist, pytest_cov, mypy, ruff"
    [ "$extras" = bench ] && check="import pynetdrv, matplotlib"
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
        echo "==> apt: installing python3 python3-venv"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
    fi
    if ! .venv/bin/python -c '' >/dev/null 2>&1; then
        echo "==> venv: creating .venv with $(python3 --version 2>&1)"
        rm -rf .venv
        python3 -m venv .venv
    fi
    stamp=.venv/.pynetdrv-stamp
    want="$(sha256sum pyproject.toml | cut -c1-16)"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! .venv/bin/python -c "$check" >/dev/null 2>&1; then
        echo "==> venv: pip install -e '$spec' (log: .venv/pip-install.log)"
        rm -f "$stamp"
        .venv/bin/python -m pip install --disable-pip-version-check -e "$spec" >.venv/pip-install.log 2>&1 \
            || { tail -20 .venv/pip-install.log; echo "pip install failed" >&2; return 1; }
        echo "$want" >"$stamp"
    else
        echo "==> venv: up to date (.venv)"
    fi
}
