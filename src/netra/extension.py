"""The operator's own code in a Netra process: ``--app pkg.module:setup`` (``server.app``)
names a function that ``Netra`` calls with itself before serving, to register tools and
agents (``netra.tools.register``, ``netra.agents.register``). Every ``netra serve`` and
``netra worker`` given the same value runs the same setup, so a worker executes the tools a
serving instance offers.

Like uvicorn's ``module:app``, the module is imported with the working directory on the
import path. Every way the value can be wrong is one ``ConfigurationError`` saying what to
do, never a traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable

from netra.errors import ConfigurationError

Setup = Callable[..., object]
"""``setup(netra)``; what it returns is ignored."""


def load_setup(spec: str) -> Setup:
    """The function ``spec`` (``pkg.module:function``) names, imported."""
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise ConfigurationError(
            f"--app {spec!r} must read pkg.module:function (a colon before the function)"
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigurationError(
            f"--app {spec!r}: no module named {exc.name!r}; run netra from the directory "
            "that holds it, or install it"
        ) from None
    except Exception as exc:
        raise ConfigurationError(
            f"--app {spec!r}: importing {module_name} failed: {type(exc).__name__}: {exc}"
        ) from None
    setup: object = getattr(module, attribute, None)
    if setup is None:
        raise ConfigurationError(f"--app {spec!r}: module {module_name} has no {attribute!r}")
    if not callable(setup):
        raise ConfigurationError(
            f"--app {spec!r}: {attribute!r} is a {type(setup).__name__}, not a function "
            "taking the Netra object"
        )
    return setup


def run_setup(spec: str, netra: object) -> None:
    """Import ``spec`` and call it with ``netra``; whatever it raises becomes one line."""
    setup = load_setup(spec)
    try:
        setup(netra)
    except ConfigurationError as exc:
        raise ConfigurationError(f"--app {spec!r}: {exc.message}") from None
    except Exception as exc:
        raise ConfigurationError(
            f"--app {spec!r}: setup failed: {type(exc).__name__}: {exc}"
        ) from None
