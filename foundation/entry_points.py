"""Import `package.module:function` entry points named on the command line."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

from foundation.errors import CompressError


def import_entry_point(spec: str, error: type[CompressError], what: str) -> Callable:
    """The callable named by spec; the current directory is importable, as users expect."""
    module_name, sep, func_name = spec.partition(":")
    if not sep or not module_name or not func_name:
        raise error(f"{what} '{spec}' must look like package.module:function.")
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except Exception as exc:  # import errors, syntax errors, failures at import time
        raise error(f"{what} '{spec}' could not be imported: {type(exc).__name__}: {exc}") from exc
    if not callable(func):
        raise error(f"{what} '{spec}' is not callable.")
    return func
