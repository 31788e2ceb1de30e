#!/usr/bin/env bash
# The core tests against the LOWEST versions pyproject.toml allows (make lowest; CI runs it).
#
# Every `name>=X` among the dependencies and the runtime extras becomes `name==X` in a
# constraints file, so pip installs exactly the lower bounds of what conveyor names itself
# (pip has no --resolution=lowest; this is uv's "lowest-direct"); their own dependencies, and
# the test tools, resolve as usual. A lower bound that is wrong fails here, not for a user.
# The venv is .venv-lowest, rebuilt when pyproject.toml changes. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export PIP_DISABLE_PIP_VERSION_CHECK=1
PYTHON=${PYTHON:-python3}
VENV=.venv-lowest
EXTRAS=redis,postgres,dashboard,prometheus,crypto  # every runtime extra: not bench, not test
log() { printf '==> %s\n' "$*" >&2; }

constraints() {  # pyproject's lower bounds, pinned
    "$PYTHON" - "$EXTRAS" <<'PY'
import re, sys, tomllib

project = tomllib.load(open("pyproject.toml", "rb"))["project"]
requirements = list(project["dependencies"])
for extra in sys.argv[1].split(","):
    requirements += project["optional-dependencies"][extra]
for requirement in requirements:
    match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^]]*\])?>=([^,;\s]+)", requirement.replace(" ", ""))
    if match is None:
        if not requirement.startswith("conveyor["):
            sys.exit(f"scripts/lowest.sh: no lower bound to pin in {requirement!r}")
        continue
    print(f"{match[1]}=={match[3]}")
PY
}

if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
pins="$(constraints)"
stamp="$VENV/.conveyor-lowest-stamp"
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $("$VENV/bin/python" -V 2>&1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    log "installing the lowest allowed versions into $VENV:" $pins
    rm -f "$stamp"
    printf '%s\n' "$pins" >"$VENV/constraints.txt"
    # Runtime at the lower bounds; the test tools (not what a user installs) as usual.
    "$VENV/bin/python" -m pip install -q -c "$VENV/constraints.txt" -e ".[$EXTRAS]" \
        pytest pytest-timeout hypothesis httpx
    printf '%s\n' "$want" >"$stamp"
fi
log "installed: $("$VENV/bin/python" -m pip freeze --exclude-editable | tr '\n' ' ')"

# The core tests, the conformance suite on every store (redis-py and psycopg at their lower
# bounds), the CLI (click, rich) and the dashboard's pages (TestClient, no browser): every
# runtime dependency is used. About a minute on 2 cores, plus the install.
export PATH="$PWD/$VENV/bin:$PATH"  # so the CLI tests' `python -m conveyor` runs this install
log "pytest (lowest versions)"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/core tests/conformance tests/cli \
    tests/dashboard/test_pages.py tests/dashboard/test_security.py "$@"
