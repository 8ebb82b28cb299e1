"""REST for trusting the books: closing and reopening periods, and verifying the hash chain (SPEC §9)."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.deps import StoreDep, VendorDep, blocking
from api.errors import StrictJsonRoute
from api.routes import COMMON_RESPONSES
from api.schemas import ErrorResponse
from flows.periods import VendorBusy, close_books, periods_view, reopen_books
from flows.verify import verify_vendor
from ledger.periods import PeriodRefused

router = APIRouter(prefix="/api/ledger", tags=["books"], responses=COMMON_RESPONSES, route_class=StrictJsonRoute)
REFUSED: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorResponse, "description": "vendor_busy: a sync of the vendor is running"},
    422: {"description": "The close or reopen is refused (the reason says why), or a parameter is invalid"}}


class _DayBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    through: date = Field(description="A day (YYYY-MM-DD)")

    @field_validator("through", mode="before")
    @classmethod
    def _day_string(cls, value: Any) -> Any:
        if isinstance(value, str) and len(value) == 10:
            return value
        raise ValueError(f"not a date: {value!r}; use a YYYY-MM-DD string")


class CloseRequest(_DayBody):
    """Close the books through a day: not before the current close date, not after today."""


class ReopenRequest(_DayBody):
    """Move the close date back to a day, for a reason that is kept."""

    reason: str = Field(min_length=1, max_length=2000)


class ChainHead(BaseModel):
    seq: int
    hash: str
    entryId: str | None = None


class PeriodView(BaseModel):
    action: str = Field(description="close | reopen")
    through: str
    at: str | None
    reason: str | None = None
    trialBalance: dict[str, Any] = Field(description="The trial balance as of `through`, when it was done")
    chainHead: ChainHead


class PeriodList(BaseModel):
    vendorId: str
    closedThrough: str | None
    periods: list[PeriodView]


class FirstBad(BaseModel):
    seq: int | None
    entryId: str | None
    problem: str = Field(description="hash mismatch | missing | unbalanced | out of order")


class VerifyReport(BaseModel):
    vendorId: str
    ok: bool
    entries: int
    head: ChainHead
    firstBad: FirstBad | None


def _refused(error: PeriodRefused) -> HTTPException:
    if isinstance(error, VendorBusy):
        return HTTPException(status.HTTP_409_CONFLICT, detail={"code": "vendor_busy", "message": str(error)})
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail={"code": "refused", "message": str(error)})


@router.get("/periods", response_model=PeriodList, summary="Every close and reopen of the books, in order",
            operation_id="periods")
async def periods(vendor_id: VendorDep, store: StoreDep):
    return await blocking(periods_view, store, vendor_id)


@router.post("/periods/close", response_model=PeriodView, summary="Close the books through a day",
             operation_id="close_period", responses=REFUSED)
async def close_period(vendor_id: VendorDep, store: StoreDep, body: CloseRequest):
    try:
        return await blocking(close_books, store, vendor_id, body.through)
    except PeriodRefused as error:
        raise _refused(error) from None


@router.post("/periods/reopen", response_model=PeriodView, summary="Move the close date back, with a reason",
             operation_id="reopen_period", responses=REFUSED)
async def reopen_period(vendor_id: VendorDep, store: StoreDep, body: ReopenRequest):
    try:
        return await blocking(reopen_books, store, vendor_id, body.through, body.reason)
    except PeriodRefused as error:
        raise _refused(error) from None


@router.get("/verify", response_model=VerifyReport, summary="Walk the hash chain of the books",
            operation_id="verify")
async def verify(vendor_id: VendorDep, store: StoreDep):
    return await blocking(verify_vendor, store, vendor_id)
