#!/usr/bin/env bash
# Creates (once per machine and dependency set) the virtual environment anchor runs in, and prints its path.
# The venv lives outside the repository, keyed by the Python version and the pinned dependencies in
# pyproject.toml, so a fresh clone on a warm machine reuses it; this checkout is (re)linked into it editable.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "bootstrap: anchor needs Python 3.11 or newer ($PYTHON is $("$PYTHON" --version 2>&1))" >&2; exit 1; }

key=$("$PYTHON" - <<'PY'
import hashlib, json, sys, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
deps = {"deps": project["dependencies"], "extras": project["optional-dependencies"], "py": sys.version}
print(hashlib.sha256(json.dumps(deps, sort_keys=True).encode()).hexdigest()[:16])
PY
)
CACHE="${ANCHOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/anchor}"
VENV="$CACHE/venv-$key"

mkdir -p "$CACHE"
exec 9>"$CACHE/bootstrap.lock"
flock 9  # two checkouts (or make and a test run) bootstrapping at once wait for each other instead of racing

if [[ ! -f "$VENV/.complete" ]]; then
  echo "bootstrap: creating $VENV (first run with these dependencies; about 1-2 minutes)" >&2
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "pip==25.3" "setuptools==80.9.0" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[dev]" >&2
  touch "$VENV/.complete"
fi
# The venv is shared by every checkout on this machine: point its editable install at this one, and re-link it
# when pyproject.toml changes (entry points and packages live there, not only the pinned dependencies).
here="$(pwd -P) $(sha256sum pyproject.toml | cut -c1-16)"
if [[ "$(cat "$VENV/.checkout" 2>/dev/null)" != "$here" ]]; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e . >&2
  echo "$here" > "$VENV/.checkout"
fi
echo "$VENV"
