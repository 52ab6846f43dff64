"""Shared pytest set-up.

The suite runs twice (tools/test.sh): once under Keras 3, once under tf_keras
(TF_USE_LEGACY_KERAS=1). A module marks itself with ``pytestmark``:
- ``pytest.mark.both``: run under both runtimes (model and layer tests);
- ``pytest.mark.tf_keras``: run only under tf_keras (QAT, export), also on a test of a
  ``both`` module;
- ``pytest.mark.keras3``: run only under Keras 3, also on a test of a ``both`` module
  (checks that do not depend on the runtime: one pass is enough);
- unmarked: run only under Keras 3.
"""
import gc
import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

LEGACY = os.environ.get("TF_USE_LEGACY_KERAS", "0").lower() in ("1", "true")


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="runs in the other Keras runtime's pass (see tools/test.sh)")
    for item in items:
        marks = {m.name for m in item.iter_markers()}
        if "keras3" in marks:
            runs_here = not LEGACY
        elif "both" in marks and "tf_keras" not in marks:
            runs_here = True
        else:
            runs_here = ("tf_keras" in marks) == LEGACY
        if not runs_here:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    """Resets Keras' global state (layer-name counters, graphs) before every test.

    Keras 3's default clear_session also runs the Python garbage collector, which
    costs about a second per test with TensorFlow loaded; that is done once per
    module instead (below).
    """
    from keras_zoo.backend import IS_LEGACY_KERAS, keras

    if IS_LEGACY_KERAS:
        keras.backend.clear_session()
    else:
        keras.backend.clear_session(free_memory=False)
    yield


@pytest.fixture(autouse=True, scope="module")
def _collect_garbage_per_module():
    yield
    gc.collect()
