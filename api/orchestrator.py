"""The API's only contact with Prefect: trigger a run of the deployment, cancel one, check health.

One `PrefectClient` per API process, bound to the URL in the API's settings
(`PREFECT_API_URL`), opened in the app's lifespan.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from flows.deployments import flow_run_name, run_tags  # named like every sync: the events bridge finds runs by them

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

log = logging.getLogger("ledger_sync.api.prefect")

class PrefectUnavailable(RuntimeError):
    pass


class Orchestrator:
    def __init__(self, api_url: str, deployment: str):
        self.api_url = api_url
        self.deployment = deployment
        self._client: PrefectClient | None = None

    async def start(self) -> None:
        from prefect.client.orchestration import PrefectClient
        from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_KEY

        self._client = PrefectClient(self.api_url, auth_string=PREFECT_API_AUTH_STRING.value(),
                                     api_key=PREFECT_API_KEY.value())
        await self._client.__aenter__()

    async def close(self) -> None:
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
        """Stop a flow run. Returns "cancelled" when it had not started (it never will),
        "cancelling" when its process is being stopped, "finished" when it had already ended."""
        from uuid import UUID

        from prefect.client.schemas.objects import StateType
        from prefect.client.schemas.responses import SetStateStatus
        from prefect.states import Cancelled, Cancelling

        flow_run = await self.client.read_flow_run(UUID(flow_run_id))
        state_type = flow_run.state.type if flow_run.state else None
        if state_type in (StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED):
            return "finished"
        if state_type in (None, StateType.SCHEDULED, StateType.PAUSED):
            result = await self.client.set_flow_run_state(
                flow_run_id, Cancelled(message="Cancelled by the vendor before it started"))
            if result.status == SetStateStatus.ACCEPT:
                return "cancelled"
        result = await self.client.set_flow_run_state(flow_run_id, Cancelling(message="Cancelled by the vendor"))
        if result.status != SetStateStatus.ACCEPT:
            log.warning("Prefect did not accept Cancelling for %s: %s", flow_run_id, result.details)
        return "cancelling"
