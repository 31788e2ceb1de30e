#!/usr/bin/env bash
# Run the conveyor demo: a few hundred jobs through a real worker on the embedded SQLite
# store, with a live display. Needs only Python 3.11+ (and Debian's python3-venv, which it
# installs when missing). Extra arguments go to `conveyor demo` (try --help).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
PYTHON=${PYTHON:-python3}
VENV=.venv

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    { echo "scripts/demo.sh: Python 3.11+ is required (set PYTHON=...)" >&2; exit 2; }
if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
        sudo=(); [ "$(id -u)" -eq 0 ] || sudo=(sudo)
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python$pyver-venv" >/dev/null
    fi
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -c 'import conveyor.cli' >/dev/null 2>&1 || "$VENV/bin/python" -m pip install -q -e .
exec "$VENV/bin/conveyor" demo "$@"
