#!/usr/bin/env bash
# The main job on a bundled offline example: write the 'noisy-digits' example dataset, then analyse it
# (advice, then a short Optuna search on CPU at a small input size). Extra arguments go to `analyze`.
# One backbone and one validation split keep it to a few minutes on a laptop CPU (README, "Two commands").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/tladvisor examples noisy-digits examples-data/noisy-digits
.venv/bin/tladvisor analyze examples-data/noisy-digits --backbone efficientnet_lite0 --image-size 64 \
    --trials 8 --cv-folds 1 --run-name example-noisy-digits "$@"
