"""The ``vcn`` command line (entry point :func:`main`)."""
from vcn_plugin.cli.main import main

__all__ = ["main"]
