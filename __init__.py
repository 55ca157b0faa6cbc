"""FiftyOne plugin entry point of vcn (VideoClusterNet for FiftyOne).

FiftyOne executes this file as a module without a package, so the ``operators/`` package is
loaded explicitly under the name ``vcn_operators``; the library ``vcn_plugin`` is imported
from the installed package or, failing that, from this directory.
"""
import importlib.util
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))

try:
    import vcn_plugin  # noqa: F401
except ImportError:
    sys.path.insert(0, _HERE)


def _load_operators():
    if "vcn_operators" in sys.modules:
        return sys.modules["vcn_operators"]
    package_dir = os.path.join(_HERE, "operators")
    spec = importlib.util.spec_from_file_location(
        "vcn_operators", os.path.join(package_dir, "__init__.py"), submodule_search_locations=[package_dir]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["vcn_operators"] = module
    spec.loader.exec_module(module)
    return module


def register(p):
    for operator_cls in _load_operators().OPERATORS:
        p.register(operator_cls)
