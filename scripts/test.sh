#!/usr/bin/env bash
# The whole test suite, offline and on CPU. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The report test opens a real report in headless Chromium; install it where we may (CI runs as root).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
    || echo "note: could not install chromium; the browser test will be skipped" >&2
fi
# The scale-out test starts a throw-away PostgreSQL server on loopback (as a non-root user); install it likewise.
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && ! command -v initdb >/dev/null 2>&1 \
    && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null 2>&1 \
    || echo "note: could not install postgresql; the PostgreSQL scale-out test will be skipped" >&2
fi
.venv/bin/ruff check --quiet . || { echo "error: ruff found problems (above); fix them or run .venv/bin/ruff check --fix ." >&2; exit 1; }
exec .venv/bin/python -m pytest -n 2 "$@"
