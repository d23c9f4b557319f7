"""The Infinibook window (PySide6): a thin face of the engine facade `engine.api`.

Nothing here imports torch or transformers; every heavy engine call runs in a worker thread
(`workers.TaskRunner`) and reports back through Qt signals.
"""
