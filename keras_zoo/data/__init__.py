"""Datasets: tfds wrappers, embedded real data, synthetic tasks, user files.

``load_dataset(name, task=, input_specs=, batch_size=)`` returns a DatasetBundle whose
splits fit the model described by ``input_specs``. Loaders live one topic per module
and register themselves with ``@register_dataset(prefix)``; every module of this
package is imported here, so a new file is picked up without further wiring.
"""
import importlib
import pkgutil

from keras_zoo.data._base import (
    DatasetBundle,
    check_dataset,
    list_datasets,
    load_dataset,
    register_dataset,
)

__all__ = ["DatasetBundle", "check_dataset", "list_datasets", "load_dataset", "register_dataset"]

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
