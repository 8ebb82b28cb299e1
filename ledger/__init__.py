"""The ledger domain: source documents in, balanced immutable journal entries out.

Everything here is pure (no Prefect, no web, no I/O) except `ledger.store`, the
package that talks to MongoDB. Each kind of source document is one module in
`ledger.kinds`.
"""
