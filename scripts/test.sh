#!/usr/bin/env bash
# Run the whole test suite: ruff, mypy and pytest against real Redis, PostgreSQL, nginx and Chromium.
#
# Works on a fresh Debian machine with Python 3.11+: installs whatever is missing with apt-get
# (as root, or through sudo), builds .venv with `pip install -e '.[all,test]'`, then runs the
# checks. A second run skips straight to the checks. Extra arguments go to pytest:
#
#     scripts/test.sh                      # everything
#     scripts/test.sh tests/test_servers.py -x -k redis
#
# Environment: PYTHON (interpreter that builds .venv, default python3), CONVEYOR_SKIP_LINT=1
# (skip ruff and mypy), CI (set by CI: any skip, e.g. of a server that cannot start, is then
# a failure).
# The exit code is pytest's; if pytest passes but ruff or mypy failed, it is 1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export DEBIAN_FRONTEND=noninteractive
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1  # the tests drive Debian's /usr/bin/chromium
export PIP_DISABLE_PIP_VERSION_CHECK=1

PYTHON=${PYTHON:-python3}
VENV=.venv

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'scripts/test.sh: %s\n' "$*" >&2; exit 2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        if [ -t 0 ]; then sudo "$@"; else sudo -n "$@"; fi
    else
        die "not root and no sudo: cannot run '$*'; install the packages above by hand"
    fi
}

pg_bindir() {  # the directory with initdb, pg_ctl and postgres, as tests/servers.py finds it
    local dir candidates=()
    [ -n "${CONVEYOR_PG_BINDIR:-}" ] && candidates+=("$CONVEYOR_PG_BINDIR")
    if command -v initdb >/dev/null 2>&1; then
        candidates+=("$(dirname "$(readlink -f "$(command -v initdb)")")")
    fi
    while IFS= read -r dir; do candidates+=("$dir"); done < <(
        for dir in /usr/lib/postgresql/*/bin; do [ -d "$dir" ] && echo "$dir"; done | sort -V -r)
    for dir in "${candidates[@]}"; do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

# --- Python --------------------------------------------------------------------------------
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found; Python 3.11+ is required"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "$PYTHON is $("$PYTHON" -V 2>&1); Python 3.11+ is required (set PYTHON=...)"
pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

# --- system packages -----------------------------------------------------------------------
missing=()
{ command -v redis-server || [ -x /usr/bin/redis-server ]; } >/dev/null 2>&1 ||
    missing+=(redis-server)
{ command -v redis-cli || [ -x /usr/bin/redis-cli ]; } >/dev/null 2>&1 ||
    missing+=(redis-tools)
[ -x /usr/bin/chromium ] || missing+=(chromium)
{ command -v nginx || [ -x /usr/sbin/nginx ]; } >/dev/null 2>&1 || missing+=(nginx)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)  # tests/cli/test_top.py drives `conveyor top` in it
# tests/postgres/test_topologies.py puts PgBouncer (transaction mode) in front of PostgreSQL;
# the TLS tests make their own CA with openssl.
{ command -v pgbouncer || [ -x /usr/sbin/pgbouncer ]; } >/dev/null 2>&1 || missing+=(pgbouncer)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
pg_bindir >/dev/null || missing+=(postgresql)
need_venv_pkg=0
if [ ! -x "$VENV/bin/python" ] && ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    need_venv_pkg=1
fi

if [ ${#missing[@]} -gt 0 ] || [ "$need_venv_pkg" -eq 1 ]; then
    command -v apt-get >/dev/null 2>&1 ||
        die "missing ${missing[*]} (and/or python venv) and apt-get is not available"
    apt_get=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600)
    log "apt-get update"
    as_root "${apt_get[@]}" update -qq
    if [ "$need_venv_pkg" -eq 1 ]; then
        # Debian splits venv/ensurepip out of the interpreter: python3.X-venv.
        if apt-cache show "python$pyver-venv" >/dev/null 2>&1; then
            missing+=("python$pyver-venv")
        else
            missing+=(python3-venv)
        fi
    fi
    log "apt-get install ${missing[*]}"
    as_root "${apt_get[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
pg_bindir >/dev/null || die "PostgreSQL server binaries still not found after installing"
[ -x /usr/bin/chromium ] || die "/usr/bin/chromium still not found after installing"

# --- virtualenv ----------------------------------------------------------------------------
if ! "$VENV/bin/python" -c 'import sys, pip; sys.exit(sys.version_info < (3, 11))' \
        >/dev/null 2>&1; then
    log "creating $VENV with $PYTHON ($pyver)"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.conveyor-install-stamp"
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $("$VENV/bin/python" -V 2>&1) [all,test]"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    log "pip install -e '.[all,test]'"
    rm -f "$stamp"
    "$VENV/bin/python" -m pip install -q -e '.[all,test]'
    printf '%s\n' "$want" >"$stamp"
fi
export VIRTUAL_ENV="$PWD/$VENV"
export PATH="$VIRTUAL_ENV/bin:$PATH"  # so tests that spawn `conveyor ...` get this install

# --- checks --------------------------------------------------------------------------------
lint_rc=0
if [ "${CONVEYOR_SKIP_LINT:-0}" != 1 ]; then
    # `make check` (ruff check, ruff format --check, mypy --strict); bench/ is linted here
    # but not yet type-checked: it joins MYPY_PATHS once it is strict-clean.
    log "make check (mypy: src tests)"
    make -s --no-print-directory check PYTHON="$VENV/bin/python" MYPY_PATHS="src tests" || lint_rc=1
fi

log "pytest $*"
rc=0
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@" || rc=$?
if [ "$rc" -eq 0 ] && [ "$lint_rc" -ne 0 ]; then
    log "tests passed, but ruff or mypy reported problems (see above)"
    rc=1
fi
exit "$rc"
