"""`infinibook evaluate` commands."""

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    """Filled in by the area that owns these commands."""
