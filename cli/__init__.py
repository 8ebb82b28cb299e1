"""The `ledger-sync` command line: sync, trial balance, demo data, tokens, the whole stack."""
