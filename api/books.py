"""REST for reading the books (SPEC §8): the chart, account ledgers, profit and loss, the balance
sheet, aging, each document's history, and the export. Thin: `flows.books` reads, the token's
vendor is the only one read."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import StreamingResponse

from api import schemas
from api.deps import StoreDep, VendorDep, blocking
from api.errors import StrictJsonRoute
from api.params import AsOfDay, FromDay, ToDay, day, optional_day
from api.routes import COMMON_RESPONSES
from flows.books import (
    MAX_LIMIT,
    BadCursor,
    accounts_view,
    aging_view,
    balance_sheet_view,
    export_chunks,
    history_view,
    ledger_view,
    profit_and_loss_view,
)
from ledger.clock import utc_now
from ledger.ids import candidate_ids
from ledger.kinds import Side, kinds

router = APIRouter(prefix="/api/ledger", tags=["reading the books"], responses=COMMON_RESPONSES,
                   route_class=StrictJsonRoute)

AccountKey = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_:.-]+$",
                                 description="The account's key, as the trial balance shows it")]
DocumentType = Literal[tuple(kind.type for kind in kinds())]  # type: ignore[valid-type]
MEDIA = {"csv": "text/csv; charset=utf-8", "beancount": "text/plain; charset=utf-8"}


def _invalid(name: str, message: str, value: Any) -> HTTPException:
    return HTTPException(422, detail=[{"loc": ["query", name], "type": "value_error", "input": value,
                                       "msg": message}])


def _period(day_from: str | None, day_to: str | None) -> tuple[Any, Any]:
    start, end = optional_day(day_from, "from"), optional_day(day_to, "to")
    if start is not None and end is not None and end < start:
        raise _invalid("to", "`to` is before `from`", day_to)
    return start, end


@router.get("/accounts", response_model=schemas.Chart, summary="The chart of accounts with current balances",
            operation_id="accounts")
async def accounts(vendor_id: VendorDep, store: StoreDep):
    return await blocking(accounts_view, store, vendor_id)


@router.get("/accounts/{account}/ledger", response_model=schemas.AccountLedger, response_model_by_alias=True,
            summary="An account's lines with the running balance, a page at a time", operation_id="account_ledger")
async def account_ledger(account: AccountKey, vendor_id: VendorDep, store: StoreDep, day_from: FromDay = None,
                         day_to: ToDay = None, limit: int = Query(100, ge=1, le=MAX_LIMIT),
                         cursor: str | None = Query(None, min_length=1, max_length=1000,
                                                    description="`nextCursor` of the previous page")):
    start, end = _period(day_from, day_to)
    try:
        return await blocking(ledger_view, store, vendor_id, account, start, end, limit, cursor)
    except BadCursor as error:
        raise _invalid("cursor", str(error), cursor) from None


@router.get("/reports/profit-and-loss", response_model=schemas.ProfitAndLoss, response_model_by_alias=True,
            summary="Income and expenses of a period", operation_id="profit_and_loss")
async def profit_and_loss(vendor_id: VendorDep, store: StoreDep, day_from: FromDay = None, day_to: ToDay = None):
    start, end = _period(day_from, day_to)
    return await blocking(profit_and_loss_view, store, vendor_id, start, end)


@router.get("/reports/balance-sheet", response_model=schemas.BalanceSheet, summary="Assets = liabilities + equity",
            operation_id="balance_sheet")
async def balance_sheet(vendor_id: VendorDep, store: StoreDep, asOf: AsOfDay = None):
    return await blocking(balance_sheet_view, store, vendor_id, optional_day(asOf, "asOf"))


@router.get("/reports/aging", response_model=schemas.Aging, summary="Open documents by party and age",
            operation_id="aging")
async def aging(vendor_id: VendorDep, store: StoreDep, side: Side = Query(description="receivable or payable"),
                asOf: AsOfDay = None):
    as_of = utc_now().date() if asOf is None else day(asOf)
    return await blocking(aging_view, store, vendor_id, side, as_of)


@router.get("/documents/{sourceType}/{sourceId}/history", response_model=schemas.DocumentHistory,
            summary="Every entry posted and reversed for a document, with the sync and the reason",
            operation_id="document_history")
async def document_history(vendor_id: VendorDep, store: StoreDep,
                           source_type: DocumentType = Path(alias="sourceType"),  # type: ignore[valid-type]
                           source_id: str = Path(alias="sourceId", min_length=1, max_length=2000,
                                                 description="The document's _id as text, or its key")):
    view: dict[str, Any] = {}
    for candidate in candidate_ids(source_id):  # values only: a key never decodes to an operator
        view = await blocking(history_view, store, vendor_id, source_type, candidate)
        if view["entries"]:
            break
    return view


@router.get("/export", response_class=StreamingResponse, summary="The books as CSV or Beancount, streamed",
            operation_id="export",
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}},
                                         "text/plain": {"schema": {"type": "string"}}},
                             "description": "CSV: one row per line; Beancount: one transaction per entry"}})
async def export(vendor_id: VendorDep, store: StoreDep, file_format: Literal["csv", "beancount"] = Query(
        alias="format", description="csv or beancount"), day_from: FromDay = None, day_to: ToDay = None):
    start, end = _period(day_from, day_to)
    chunks = await blocking(export_chunks, store, vendor_id, file_format, start, end)
    return StreamingResponse(chunks, media_type=MEDIA[file_format],
                             headers={"Content-Disposition": f'attachment; filename="books.{file_format}"'})
