"""Finding the modules of a package that register something: every storage backend and every fault is one module
defining one object under an agreed name (``BACKEND``, ``FAULT``). Imported by name, once, so the modules stay
independent of each other and nothing imports a backend or fault module directly."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable


def registered(package: str, path: Iterable[str], attribute: str) -> list[object]:
    """``attribute`` of every module of ``package`` (its ``__path__``) that defines it, in module-name order."""
    found = []
    for info in sorted(pkgutil.iter_modules(list(path)), key=lambda i: i.name):
        module = importlib.import_module(f"{package}.{info.name}")
        value = getattr(module, attribute, None)
        if value is not None:
            found.append(value)
    return found
