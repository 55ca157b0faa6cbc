"""The ``vcn`` command line: every stage, evaluation, corrections and benchmarks, with tqdm progress."""
from __future__ import annotations

import click

from vcn_plugin.cli.benchmark import benchmark
from vcn_plugin.cli.evaluate import EVALUATION_COMMANDS
from vcn_plugin.cli.identity import identity
from vcn_plugin.cli.ops import ops
from vcn_plugin.cli.stages import STAGE_COMMANDS


@click.group()
@click.version_option(package_name="vcn-plugin")
def main() -> None:
    """VideoClusterNet for FiftyOne: find, track and cluster the faces of videos."""


for _command in [*STAGE_COMMANDS, *EVALUATION_COMMANDS, benchmark, identity, ops]:
    main.add_command(_command)

if __name__ == "__main__":
    main()
