"""`infinibook gui`."""

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    pass
