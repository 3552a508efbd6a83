#!/usr/bin/env bash
# Create .venv (once per change of the dependency files) with the CPU build of torch first,
# then the project and its test extra under constraints.txt, so pip never swaps torch for a
# multi-GB CUDA build. Re-running is cheap: a stamp keyed on the dependency files skips it.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${IWUO_VENV:-.venv}
PY=${PYTHON:-python3}
TORCH_SPEC=${IWUO_TORCH:-torch==2.13.0}
stamp_key=$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -c1-16)
if [ -f "$VENV/.iwuo-setup-$stamp_key" ]; then
  exit 0
fi
echo "[setup] creating $VENV (torch: $TORCH_SPEC)" >&2
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "$TORCH_SPEC"
"$VENV/bin/python" -m pip install --quiet -c constraints.txt -e ".[test,web]"
"$VENV/bin/python" -c "import torch, nnunetv2, SimpleITK, slicer; print('[setup] torch', torch.__version__, '| nnunetv2 ok | slicer-core ok')" >&2
# The browser front end's tests: Debian's Chromium (Playwright drives it; no browser download) and
# Mesa's EGL + software OpenGL for VTK's headless rendering.
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
dpkg -s libegl-mesa0 libgl1-mesa-dri >/dev/null 2>&1 || need+=(libegl-mesa0 libgl1-mesa-dri)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[setup] apt-get install ${need[*]}" >&2
    (apt-get install -y -qq "${need[@]}" || (apt-get update -qq && apt-get install -y -qq "${need[@]}")) >/dev/null
  else
    echo "[setup] WARNING: install ${need[*]} (Debian packages) for the browser front end and its tests" >&2
  fi
fi
rm -f "$VENV"/.iwuo-setup-*
touch "$VENV/.iwuo-setup-$stamp_key"
