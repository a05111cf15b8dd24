#!/usr/bin/env bash
# Installs what the notebooks need, idempotently: a Python virtual environment (.venv) with
# pinned JupyterLab/nbconvert/nbclient, evcxr_jupyter (pinned, `cargo install --locked`;
# about 15 minutes on 2 cores, once per machine) and the Rust kernelspec. The evcxr settings
# (opt level, compile cache, linker; measured by scripts/cell-latency.py, see README) are in
# every notebook's first cell and in notebooks/.evcxr/init.evcxr, which the run scripts
# use as EVCXR_CONFIG_DIR.
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

export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo install --list | grep -q "^evcxr_jupyter v$EVCXR_VERSION"; then
  say "installing evcxr_jupyter $EVCXR_VERSION (about 15 minutes on 2 cores, once per machine)"
  cargo install evcxr_jupyter --version "$EVCXR_VERSION" --locked --quiet \
    || { say "error: cargo install evcxr_jupyter failed"; exit 1; }
fi
if ! "$venv/bin/jupyter" kernelspec list 2>/dev/null | grep -q "^ *rust "; then
  evcxr_jupyter --install >/dev/null
fi
# glibc's malloc gives every buffer above its mmap threshold fresh pages from the kernel and
# hands them back on free, and one training step allocates dozens of such buffers: a step of
# the default network took 31-32 ms under glibc's defaults and 17-18.5 ms with these two
# settings, as fast as under mimalloc, the command line's allocator (examples/step_timing.rs
# built without it, 2 threads, 6 December). The kernel, and the code it runs, inherit the
# kernelspec's environment, so notebooks opened in JupyterLab get them too.
spec=$("$venv/bin/jupyter" kernelspec list --json | "$venv/bin/python" -c \
  'import json, sys; print(json.load(sys.stdin)["kernelspecs"]["rust"]["resource_dir"])')/kernel.json
"$venv/bin/python" - "$spec" <<'PY' || { say "error: could not set the allocator settings in $spec"; exit 1; }
import json, sys
path = sys.argv[1]
with open(path) as f:
    spec = json.load(f)
want = {"MALLOC_MMAP_THRESHOLD_": "268435456", "MALLOC_TRIM_THRESHOLD_": "1073741824"}
env = spec.setdefault("env", {})
if any(env.get(k) != v for k, v in want.items()):
    env.update(want)
    with open(path + ".tmp", "w") as f:
        json.dump(spec, f, indent=2)
    import os
    os.replace(path + ".tmp", path)
PY
# JupyterLab in this environment: no "get notified about Jupyter news?" pop-up (it asks to
# reach the internet and covers the notebook on a first visit).
overrides="$venv/share/jupyter/lab/settings/overrides.json"
if [ ! -f "$overrides" ]; then
  mkdir -p "$(dirname "$overrides")"
  printf '%s\n' '{ "@jupyterlab/apputils-extension:notification": { "fetchNews": "false" } }' > "$overrides"
fi
