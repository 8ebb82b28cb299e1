"""The per-vendor Prefect global concurrency limit around a sync's steps.

The database is the real guarantee of one active sync per vendor (a partial
unique index on the run records); this limit makes the same rule visible and
enforced in Prefect (UI: Concurrency → Global), named `ledger-vendor-<id>`,
limit 1, created on first use.

A process that dies hard (SIGKILL, OOM) keeps its slot until its lease
expires. When the slot cannot be had quickly, the caller already owns the
vendor's single active run record, so whoever holds the slot is a dead run:
the slot is reclaimed instead of making the vendor wait for the lease.

Tolerant by design: when the Prefect API cannot manage limits (an old server,
the test harness torn down, `LEDGER_VENDOR_CONCURRENCY_LIMIT=false`), the flow
goes on without the limit and logs why.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("ledger_sync.concurrency")

LEASE_SECONDS = 60  # the server's minimum: a dead holder frees the slot within a minute at worst
ACQUIRE_TIMEOUT_SECONDS = 5.0
_SAFE = re.compile(r"[A-Za-z0-9_.:-]{1,80}")


def limit_name(vendor_id: str) -> str:
    if _SAFE.fullmatch(vendor_id):
        return f"ledger-vendor-{vendor_id}"
    digest = hashlib.sha256(vendor_id.encode()).hexdigest()[:16]
    return f"ledger-vendor-{re.sub(r'[^A-Za-z0-9_.-]+', '-', vendor_id)[:40]}-{digest}"


def _ensure_limit(name: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
            return
        except ObjectNotFound:
            pass
        with contextlib.suppress(ObjectAlreadyExists):  # created by a concurrent run meanwhile
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))


def _reclaim(name: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

    with get_client(sync_client=True) as client:
        client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active_slots=0))


@contextmanager
def vendor_slot(vendor_id: str, enabled: bool = True) -> Iterator[None]:
    """Hold the vendor's Prefect concurrency slot (limit 1) for the duration of the block."""
    if not enabled:
        yield
        return
    from prefect.concurrency.sync import concurrency

    name = limit_name(vendor_id)
    try:
        _ensure_limit(name)
    except Exception as error:  # noqa: BLE001 - the database index still guarantees one run per vendor
        log.warning("no Prefect concurrency limit for vendor %s (%s); relying on the database guarantee",
                    vendor_id, error)
        yield
        return
    slot = concurrency(name, occupy=1, strict=True, timeout_seconds=ACQUIRE_TIMEOUT_SECONDS,
                       lease_duration=LEASE_SECONDS, raise_on_lease_renewal_failure=False)
    try:
        slot.__enter__()
    except TimeoutError:
        # We own the vendor's only active run record, so the holder is a run that died hard.
        log.warning("Prefect slot %s held by a dead run; reclaiming it", name)
        _reclaim(name)
        slot = concurrency(name, occupy=1, strict=True, timeout_seconds=ACQUIRE_TIMEOUT_SECONDS * 2,
                           lease_duration=LEASE_SECONDS, raise_on_lease_renewal_failure=False)
        slot.__enter__()
    try:
        yield
    except BaseException as error:
        if not slot.__exit__(type(error), error, error.__traceback__):
            raise
    else:
        slot.__exit__(None, None, None)
