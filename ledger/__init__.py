"""The ledger domain: source documents in, balanced immutable journal entries out.

Everything here is pure (no Prefect, no web, no I/O) except `store`, the one
module that talks to MongoDB.
"""
