#!/usr/bin/env bash
# Creates or updates the project's virtual environment in .venv (idempotent).
#
# `pip install tensorflow-federated==0.87.0` cannot resolve: TFF pins
# jax==0.4.14/jaxlib==0.4.14, which the package index no longer serves. So TFF
# is installed with --no-deps, after its other requirements, pinned explicitly
# with jax/jaxlib 0.4.13, from requirements/tff.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
STAMP="$VENV/.tff-residual-installed"
want=$(cat requirements/tff.txt requirements/project.txt setup.py scripts/install.sh | sha256sum | cut -d' ' -f1)
if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3.10 python3.9 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then PYTHON=$candidate; break; fi
  done
fi
if [ -z "$PYTHON" ]; then
  echo "install: no python3 found; TensorFlow Federated 0.87.0 needs Python 3.9-3.11." >&2
  exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(0 if (3, 9) <= sys.version_info[:2] <= (3, 11) else 1)'; then
  echo "install: $PYTHON is Python $("$PYTHON" -c 'import platform; print(platform.python_version())');" \
       "TensorFlow Federated 0.87.0 needs 3.9-3.11 (set PYTHON=/path/to/python3.11)." >&2
  exit 1
fi

echo "install: setting up $VENV with $PYTHON (a few minutes the first time)"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install -r requirements/tff.txt -r requirements/project.txt
"${PIP[@]}" install --no-deps tensorflow-federated==0.87.0
"${PIP[@]}" install --no-deps --no-build-isolation -e .
"$VENV/bin/python" -c 'import tensorflow_federated, tff_residual' 2>/dev/null \
  || { echo "install: import check failed" >&2; exit 1; }
echo "$want" > "$STAMP"
echo "install: done"
