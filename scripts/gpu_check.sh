#!/usr/bin/env bash
# The GPU check: install check, CUDA smoke step of every model, train-step benchmark at the paper
# config (fp32 / bf16 / compiled), sampling and evaluation on CUDA, data pipeline, 2-GPU torchrun.
# Prints one table; exits non-zero on any failure. Usage: scripts/gpu_check.sh [--json-out FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
exec timeout 600 "$PY" scripts/gpu_check.py "$@"
