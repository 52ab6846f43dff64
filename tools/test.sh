#!/usr/bin/env bash
# The test command: sets up .venv if needed, then runs the suite under Keras 3 and
# again under tf_keras (TF_USE_LEGACY_KERAS=1). Extra arguments go to pytest.
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"

# Without arguments each pass runs in two pytest sessions: a worker's memory grows with
# every model it builds, and these sweeps build every registered model, some at full size.
MODEL_SWEEPS=(tests/test_models.py tests/test_vision_params.py tests/test_vision_apps.py)

run_pass() {
    if [ $# -gt 0 ]; then
        python -m pytest -n 2 -m "not slow" "$@"
        return
    fi
    local result=0
    python -m pytest -n 2 -m "not slow" "${MODEL_SWEEPS[@]}" || result=$?
    python -m pytest -n 2 -m "not slow" "${MODEL_SWEEPS[@]/#/--ignore=}" || result=$?
    return $result
}

status=0
echo "== pass 1/2: Keras 3 =="
run_pass "$@" || status=$?
echo "== pass 2/2: tf_keras (TF_USE_LEGACY_KERAS=1) =="
TF_USE_LEGACY_KERAS=1 run_pass "$@" || status=$?
exit $status
