#!/usr/bin/env bash
# The main job (README's first command): sets up Jupyter and the Rust (evcxr) kernel, then
# executes every notebook headless on the built-in data in the quick profile.
# Idempotent: a second run skips what is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
EVCXR_VERSION=0.22.0
venv=.venv
say() { printf '%s\n' "$*"; }

if [ ! -x "$venv/bin/jupyter" ] || ! "$venv/bin/python" -c "import nbclient, nbconvert, jupyterlab" 2>/dev/null; then
  say "setting up Python environment in $venv (JupyterLab, nbconvert, nbclient)"
  python3 -m venv "$venv" || { say "error: python3 -m venv failed (install python3-venv)"; exit 1; }
  "$venv/bin/pip" install -q --disable-pip-version-check -r scripts/requirements-notebooks.txt \
    || { say "error: pip could not install scripts/requirements-notebooks.txt"; exit 1; }
fi

if ! cargo install --list | grep -q "^evcxr_jupyter v$EVCXR_VERSION"; then
  say "installing evcxr_jupyter $EVCXR_VERSION (about 15 minutes on 2 cores, once per machine)"
  cargo install evcxr_jupyter --version "$EVCXR_VERSION" --locked --quiet \
    || { say "error: cargo install evcxr_jupyter failed"; exit 1; }
fi
export PATH="$HOME/.cargo/bin:$PATH"
if ! "$venv/bin/jupyter" kernelspec list 2>/dev/null | grep -q "^ *rust "; then
  evcxr_jupyter --install >/dev/null
fi

bash scripts/run-notebooks.sh --profile quick
say ""
say "Executed notebooks are in target/notebooks/. To open them in JupyterLab:"
say "  $venv/bin/jupyter lab --notebook-dir=. target/notebooks"
