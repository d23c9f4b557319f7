"""Infinibook desktop window and command line: thin faces of the engine API."""
