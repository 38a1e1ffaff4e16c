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
FMNIST_DIR=/usr/share/datasets/fashion-mnist
FMNIST_MARKER="$VENV/.fmnist-unavailable"

# Real Fashion-MNIST, offline: Debian's dataset-fashion-mnist (IDX files in $FMNIST_DIR).
# Needs root (or password-less sudo); otherwise say how, and record why for the tests.
install_fashion_mnist() {
  [ -f "$FMNIST_DIR/train-images-idx3-ubyte.gz" ] && { rm -f "$FMNIST_MARKER"; return 0; }
  local apt=()
  if command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then apt=(apt-get); elif sudo -n true 2>/dev/null; then apt=(sudo -n apt-get); fi
  fi
  if [ ${#apt[@]} -gt 0 ]; then
    echo "install: adding Fashion-MNIST (Debian package dataset-fashion-mnist, 31 MB)"
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
      || { "${apt[@]}" update -q >/dev/null 2>&1 \
           && DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -q dataset-fashion-mnist >/dev/null 2>&1; } \
      || true
  fi
  if [ -f "$FMNIST_DIR/train-images-idx3-ubyte.gz" ]; then rm -f "$FMNIST_MARKER"; return 0; fi
  local why="Fashion-MNIST is not installed: Debian's dataset-fashion-mnist needs root"
  command -v apt-get >/dev/null 2>&1 || why="Fashion-MNIST is not installed: no apt-get on this machine"
  echo "install: $why. Add it with 'sudo apt-get install dataset-fashion-mnist' (or pass" \
       "--data_path to Fashion-MNIST's IDX files); until then 'make run' uses MNIST digits." >&2
  mkdir -p "$VENV"
  echo "$why (run 'sudo apt-get install dataset-fashion-mnist')" > "$FMNIST_MARKER"
}
install_fashion_mnist
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
