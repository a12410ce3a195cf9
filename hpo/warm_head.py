"""The warm head's process (`hpo up` starts `python -m hpo.warm_head`): it sits above the CLI and
hands hpo.runner.head the CLI's entry point and parser to run the `hpo run` commands clients send
(hpo.runner.served), so nothing below the CLI imports it."""

from __future__ import annotations

from hpo import cli
from hpo.runner import head

if __name__ == "__main__":
    head.main(cli.main, cli._parser)
