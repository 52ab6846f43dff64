#!/usr/bin/env bash
# The main job: sets up .venv if needed, then train -> QAT -> int8 TFLite -> Edge TPU
# report -> verify on embedded real data (tools/main_job.py). Extra arguments are its flags.
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
exec python tools/main_job.py "$@"
