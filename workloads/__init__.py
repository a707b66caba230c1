"""Workload registry: a name maps to 'module:Class', imported only when used.

Adding a workload is one new file plus one line here. A user's own workload is
named by import path instead: `--workload=my_module:MyWorkload` (or
`path/to/file.py:MyWorkload`).

Layers: base (the Workload contract, Goal, DataError) < models (Flax modules) <
tfds_source < the workload files (embedded, synthetic, mnist, cifar10, imagenet,
lm1b). Workloads import nothing of bench, protocols or analysis
(tests/test_layering.py), so they load user files with their own loader here
rather than bench.userfiles.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys

from workloads.base import DataError, Goal, Workload  # noqa: F401

REGISTRY: dict[str, str] = {
    # embedded, download-free (README demo, tests)
    "mnist1d_mlp": "workloads.embedded:Mnist1dMlp",
    "mnist1d_cnn": "workloads.embedded:Mnist1dCnn",
    "mnist1d_large_mlp": "workloads.embedded:Mnist1dLargeMlp",
    "stdlib_lm": "workloads.embedded:StdlibLm",
    # real data (tfds, or arrays in --data_dir)
    "mnist_cnn": "workloads.mnist:MnistCnn",
    "fashion_mnist_cnn": "workloads.mnist:FashionMnistCnn",
    "cifar10_resnet8": "workloads.cifar10:Cifar10ResNet8",
    "cifar10_resnet32": "workloads.cifar10:Cifar10ResNet32",
    "imagenet_resnet50": "workloads.imagenet:ImagenetResNet50",
    "lm1b_transformer": "workloads.lm1b:Lm1bTransformer",
    "shakespeare_lm": "workloads.lm1b:ShakespeareLm",
}


class UnknownWorkloadError(ValueError):
  pass


def _load_class(spec: str):
  module_name, _, attr = spec.partition(":")
  if module_name.endswith(".py"):
    if not os.path.isfile(module_name):
      raise UnknownWorkloadError(f"workload file not found: {module_name}")
    mod_id = "user_workload_" + os.path.splitext(os.path.basename(module_name))[0]
    spec_ = importlib.util.spec_from_file_location(mod_id, module_name)
    module = importlib.util.module_from_spec(spec_)
    sys.modules[mod_id] = module
    spec_.loader.exec_module(module)
  else:
    try:
      module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
      raise UnknownWorkloadError(f"cannot import workload module {module_name!r}: {e}") from None
  try:
    cls = getattr(module, attr)
  except AttributeError:
    raise UnknownWorkloadError(f"module {module_name!r} has no workload {attr!r}") from None
  if not (isinstance(cls, type) and issubclass(cls, Workload)):
    raise UnknownWorkloadError(f"{spec!r} is not a workloads.Workload subclass")
  return cls


def workload_class(name: str) -> type[Workload]:
  """Class for a registered name or a 'module:Class' / 'file.py:Class' path."""
  if name in REGISTRY:
    return _load_class(REGISTRY[name])
  if ":" in name:
    return _load_class(name)
  raise UnknownWorkloadError(
      f"unknown workload {name!r}; registered: {', '.join(sorted(REGISTRY))} "
      "(or give 'module:Class')")


def get(name: str, **kwargs) -> Workload:
  """Instantiate a workload by name (kwargs: data_dir, dtype, ...)."""
  return workload_class(name)(**kwargs)
