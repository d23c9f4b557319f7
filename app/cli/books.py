"""`infinibook books`."""

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    pass
