"""Serve the sync flow as the deployment `sync-vendor-ledger/on-demand`.

A long-running process (started by `ledger-sync up`, or on its own with
`python -m flows.serve`) that polls the Prefect API for runs of the deployment
and executes each in a subprocess. The API triggers runs with
`run_deployment("sync-vendor-ledger/on-demand", ...)`. Needs `PREFECT_API_URL`.

The same deployment can instead run on a process work pool: see `prefect.yaml`
(`prefect --no-prompt deploy --all` + `prefect worker start --pool ledger-sync`).
"""

from __future__ import annotations

import os

DEPLOYMENT_NAME = "on-demand"
FLOW_NAME = "sync-vendor-ledger"
FULL_NAME = f"{FLOW_NAME}/{DEPLOYMENT_NAME}"

# Read by Prefect when it is imported: pick a new run up within about a second.
os.environ.setdefault("PREFECT_RUNNER_POLL_FREQUENCY", "1")


def build_deployment():
    from flows.sync_vendor import sync_vendor_ledger

    return sync_vendor_ledger.to_deployment(
        name=DEPLOYMENT_NAME,
        description="Sync one vendor's invoices, payments and expenses into its ledger, on demand (API, UI).",
        tags=["ledger-sync"],
    )


def main() -> None:
    from prefect import serve

    if not os.environ.get("PREFECT_API_URL"):
        raise SystemExit("flows.serve needs PREFECT_API_URL (the Prefect server to take runs from)")
    limit = int(os.environ.get("LEDGER_SERVE_LIMIT", "8"))
    # Not paused on shutdown: a run triggered while this process restarts waits and is picked up after.
    serve(build_deployment(), limit=limit, print_starting_message=False, pause_on_shutdown=False)


if __name__ == "__main__":
    main()
