"""The API's only contact with Prefect: trigger a run of the deployment, cancel one, check health.

One `PrefectClient` per API process, bound to the URL in the API's settings
(`PREFECT_API_URL`), opened in the app's lifespan.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from flows.deployments import flow_run_name, run_tags  # named like every sync: the events bridge finds runs by them

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

log = logging.getLogger("ledger_sync.api.prefect")

class PrefectUnavailable(RuntimeError):
    pass


class Orchestrator:
    def __init__(self, api_url: str, deployment: str, force_cancel_after_seconds: float = 30.0):
        self.api_url = api_url
        self.deployment = deployment
        self.force_cancel_after_seconds = force_cancel_after_seconds
        self._client: PrefectClient | None = None
        self._forced: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        from prefect.client.orchestration import PrefectClient
        from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_KEY

        self._client = PrefectClient(self.api_url, auth_string=PREFECT_API_AUTH_STRING.value(),
                                     api_key=PREFECT_API_KEY.value())
        await self._client.__aenter__()

    async def close(self) -> None:
        for pending in list(self._forced):
            pending.cancel()
        if self._client is not None:
            client, self._client = self._client, None
            await client.__aexit__(None, None, None)

    @property
    def client(self):
        if self._client is None:
            raise PrefectUnavailable("the Prefect client is not started")
        return self._client

    async def healthy(self) -> bool:
        try:
            response = await self.client._client.get("/health", timeout=3)
            return response.status_code == 200
        except Exception:  # noqa: BLE001 - health is a yes/no
            return False

    async def trigger(self, vendor_id: str, sync_id: str, parameters: dict[str, Any], attempt: int = 1) -> str:
        """Create a flow run of the deployment for this run record; returns the flow run id (does not wait)."""
        from prefect.deployments import arun_deployment

        flow_run = await arun_deployment(
            self.deployment, client=self.client, timeout=0, as_subflow=False,
            parameters={"vendor_id": vendor_id, "sync_id": sync_id, "date_from": parameters.get("dateFrom"),
                        "date_to": parameters.get("dateTo"), "types": parameters.get("types"),
                        "full": bool(parameters.get("full"))},
            tags=run_tags(vendor_id, sync_id, attempt), idempotency_key=f"{sync_id}#{attempt}",
            flow_run_name=flow_run_name(sync_id, attempt))
        return str(flow_run.id)

    async def cancel(self, flow_run_id: str) -> str:
        """Stop a flow run. Returns "cancelled" when it had not started (it never will), "cancelling" when
        it runs, "finished" when it had already ended.

        A running flow sees the run record's cancel flag at its next batch and ends Cancelled by itself,
        its steps intact; only one that has not within `force_cancel_after_seconds` is set Cancelling, for
        its runner to stop the process (which its task's log reads as "Crash detected!")."""
        from uuid import UUID

        from prefect.client.schemas.objects import StateType
        from prefect.client.schemas.responses import SetStateStatus
        from prefect.states import Cancelled

        flow_run = await self.client.read_flow_run(UUID(flow_run_id))
        state_type = flow_run.state.type if flow_run.state else None
        if state_type in (StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED):
            return "finished"
        if state_type in (None, StateType.SCHEDULED, StateType.PAUSED):
            result = await self.client.set_flow_run_state(
                flow_run_id, Cancelled(message="Cancelled by the vendor before it started"))
            if result.status == SetStateStatus.ACCEPT:
                return "cancelled"
        if state_type in (StateType.PENDING, StateType.RUNNING):
            forced = asyncio.create_task(self._force_cancel(flow_run_id), name=f"force-cancel-{flow_run_id}")
            self._forced.add(forced)
            forced.add_done_callback(self._forced.discard)
            return "cancelling"
        await self._set_cancelling(flow_run_id, "Cancelled by the vendor")
        return "cancelling"

    async def _force_cancel(self, flow_run_id: str) -> None:
        from uuid import UUID

        await asyncio.sleep(self.force_cancel_after_seconds)
        try:
            flow_run = await self.client.read_flow_run(UUID(flow_run_id))
            if flow_run.state is None or not flow_run.state.is_final():
                log.warning("flow run %s did not stop within %.0f s of its cancel: stopping its process",
                            flow_run_id, self.force_cancel_after_seconds)
                await self._set_cancelling(flow_run_id, "Cancelled by the vendor; the sync did not stop by itself")
        except Exception as error:  # noqa: BLE001 - the run record's flag still stops it
            log.warning("could not stop flow run %s: %s", flow_run_id, error)

    async def _set_cancelling(self, flow_run_id: str, message: str) -> None:
        from prefect.client.schemas.responses import SetStateStatus
        from prefect.states import Cancelling

        result = await self.client.set_flow_run_state(flow_run_id, Cancelling(message=message))
        if result.status != SetStateStatus.ACCEPT:
            log.warning("Prefect did not accept Cancelling for %s: %s", flow_run_id, result.details)
