"""Prefect orchestration: the sync flow and the processes that run it."""
