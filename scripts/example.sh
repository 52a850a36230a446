#!/usr/bin/env bash
# The main job on a bundled offline example: write the 'photos' example dataset, then analyse it
# (advice, then a short Optuna search on CPU at a small input size). Extra arguments go to `analyze`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/tladvisor examples photos examples-data/photos
.venv/bin/tladvisor analyze examples-data/photos --image-size 96 --trials 8 --run-name example-photos "$@"
