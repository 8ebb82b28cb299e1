"""Names Prefect knows Ledger Sync's runs by: deployments, tags and flow-run names.

Light on purpose (no Prefect import): the API, the CLI and the nightly fan-out all
name runs the same way, so the Prefect UI shows every sync alike and the events
bridge finds a run's record from its tags.
"""

from __future__ import annotations

FLOW_NAME = "sync-vendor-ledger"
DEPLOYMENT_NAME = "on-demand"
ON_DEMAND = f"{FLOW_NAME}/{DEPLOYMENT_NAME}"
FAN_OUT_FLOW_NAME = "sync-all-vendors"
SCHEDULED = {"nightly": False, "weekly-full": True}  # deployment name -> full

PRODUCT_TAG = "ledger-sync"
VENDOR_TAG = "ledger-vendor:"
SYNC_TAG = "ledger-sync:"
RESUMES_TAG = "ledger-resumes:"


def run_tags(vendor_id: str, sync_id: str, attempt: int = 1) -> list[str]:
    """Tags on a sync's flow run: how the Prefect UI filters by vendor and the API maps runs back;
    a resume also names the run it resumes."""
    tags = [PRODUCT_TAG, f"{VENDOR_TAG}{vendor_id}", f"{SYNC_TAG}{sync_id}"]
    if attempt > 1:
        tags.append(f"{RESUMES_TAG}{sync_id}")
    return tags


def flow_run_name(sync_id: str, attempt: int = 1) -> str:
    return sync_id if attempt == 1 else f"{sync_id}-resume-{attempt - 1}"
