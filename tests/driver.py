"""The job's driver, code/checkout_attribution.py, as a module (`code` is not a package: the
name is taken by the standard library)."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from attribution.config import PROJECT_ROOT


def load_driver() -> ModuleType:
    spec = importlib.util.spec_from_file_location("driver", PROJECT_ROOT / "code" / "checkout_attribution.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
