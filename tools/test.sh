#!/usr/bin/env bash
# The test command: sets up .venv if needed, then runs the suite under Keras 3 and
# again under tf_keras (TF_USE_LEGACY_KERAS=1). Extra arguments go to pytest.
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
status=0
echo "== pass 1/2: Keras 3 =="
python -m pytest -n 2 -m "not slow" "$@" || status=$?
echo "== pass 2/2: tf_keras (TF_USE_LEGACY_KERAS=1) =="
TF_USE_LEGACY_KERAS=1 python -m pytest -n 2 -m "not slow" "$@" || status=$?
exit $status
