"""A realistic demo data set: what a small business's app holds after a few months.

Deterministic for a seed, in the shapes of SPEC §2 including the untidy ones
(money as strings and floats, ISO-string dates, refunds), plus a few documents
that fail validation so the error display has something to show.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from bson import Decimal128, ObjectId
from pymongo.errors import BulkWriteError

CUSTOMERS = ["Asha Traders", "Blue Lotus Cafe", "Kumar & Sons", "Nimbus Labs", "Orchid Hotels", "Peak Fitness"]
SUPPLIERS = ["Metro Wholesale", "Sunrise Packaging", "Apex Electricals", "Green Farms Co-op"]
PRODUCTS = [("Consulting hour", "1500.00"), ("Widget", "249.50"), ("Service plan", "4999.00"),
            ("Cable", "85.25"), ("Installation", "1200.00"), ("Spare part", "399.99")]
CATEGORIES = ["Office Rent", "Utilities", "Travel & Meals", "Repairs_Maintenance", "Software", "  misc  "]
METHODS = ["cash", "bank", "card", "upi", "cheque", "other"]
START = datetime(2026, 1, 1, tzinfo=UTC)


def _oid(rng: random.Random) -> ObjectId:
    """Ids from the seeded generator, so loading the same demo twice adds nothing."""
    return ObjectId(rng.randbytes(12))


def _money(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _as_stored(rng: random.Random, value: Decimal):
    """Money the way different app versions stored it."""
    kind = rng.random()
    if kind < 0.6:
        return Decimal128(value)
    if kind < 0.8:
        return str(value)
    return float(value)


def _invoice(rng: random.Random, vendor_id: str, index: int, sales: bool, day: datetime) -> dict:
    items: list[dict[str, Any]] = []
    for _ in range(rng.randint(1, 4)):
        name, price = rng.choice(PRODUCTS)
        quantity = rng.randint(1, 5)
        discount = _money(Decimal(price) * quantity * Decimal(rng.choice([0, 0, 0, 5, 10])) / 100)
        items.append({"description": name, "quantity": quantity, "unitPrice": Decimal128(price),
                      "discount": Decimal128(discount), "taxRate": 18})
    subtotal = sum((Decimal(str(i["quantity"])) * i["unitPrice"].to_decimal() for i in items), Decimal(0))
    discount_total = sum((i["discount"].to_decimal() for i in items), Decimal(0))
    tax_total = _money((subtotal - discount_total) * Decimal("0.18"))
    total = subtotal - discount_total + tax_total
    status = rng.choices(["issued", "partially_paid", "paid", "draft", "void"], [30, 25, 35, 6, 4])[0]
    payments = []
    if status in ("partially_paid", "paid"):
        paid = total if status == "paid" else _money(total * Decimal(rng.choice(["0.25", "0.5", "0.6"])))
        parts = 1 if status == "partially_paid" or rng.random() < 0.7 else 2
        for part in range(parts):
            amount = paid if parts == 1 else (_money(paid / 2) if part == 0 else paid - _money(paid / 2))
            payments.append({"_id": _oid(rng), "amount": _as_stored(rng, amount),
                             "date": day + timedelta(days=rng.randint(0, 20)), "method": rng.choice(METHODS),
                             "reference": f"REF{rng.randint(10000, 99999)}"})
        if status == "paid" and rng.random() < 0.05:
            payments.append({"_id": _oid(rng), "amount": _as_stored(rng, -_money(total / 10)),
                             "date": day + timedelta(days=25), "method": "bank", "reference": "REFUND"})
    document = {
        "_id": _oid(rng), "vendorId": vendor_id, "invoiceDate": day if rng.random() < 0.85 else day.date().isoformat(),
        "currency": "INR", "items": items, "subtotal": _as_stored(rng, subtotal),
        "discountTotal": _as_stored(rng, discount_total), "taxTotal": _as_stored(rng, tax_total),
        "total": _as_stored(rng, total), "status": status, "payments": payments, "isDeleted": False,
        "createdAt": day, "updatedAt": day + timedelta(days=1),
    }
    if sales:
        document["invoiceNumber"] = f"INV-{index:05d}"
        document["customer"] = {"id": f"c{rng.randint(1, 99)}", "name": rng.choice(CUSTOMERS)}
    else:
        document["billNumber"] = f"BILL-{index:05d}"
        document["supplier"] = {"id": f"s{rng.randint(1, 99)}", "name": rng.choice(SUPPLIERS)}
    return document


def _expense(rng: random.Random, vendor_id: str, day: datetime) -> dict:
    amount = _money(Decimal(rng.randint(200, 25000)) + Decimal(rng.randint(0, 99)) / 100)
    paid = rng.random() < 0.75
    document = {
        "_id": _oid(rng), "vendorId": vendor_id, "date": day, "category": rng.choice(CATEGORIES),
        "description": rng.choice(["Monthly rent", "Electricity bill", "Client lunch", "AC repair", "SaaS licence"]),
        "amount": _as_stored(rng, amount), "taxAmount": _as_stored(rng, _money(amount * Decimal("0.18"))),
        "paymentStatus": "paid" if paid else "unpaid", "isDeleted": False, "createdAt": day,
        "updatedAt": day + timedelta(hours=2),
    }
    if paid:
        document["paymentMethod"] = rng.choice(METHODS)
    return document


def _broken(rng: random.Random, vendor_id: str, day: datetime) -> list[tuple[str, dict]]:
    """Documents a real app ends up with, each failing validation for one plain reason."""
    bad_total = _invoice(rng, vendor_id, 90001, True, day)
    bad_total["status"], bad_total["payments"], bad_total["total"] = "issued", [], "999999.99"
    bad_currency = _invoice(rng, vendor_id, 90002, True, day)
    bad_currency["status"], bad_currency["currency"] = "issued", "USD"
    bad_amount = _expense(rng, vendor_id, day)
    bad_amount["amount"] = "twelve hundred"
    bad_status = _invoice(rng, vendor_id, 90003, False, day)
    bad_status["status"] = "approved"
    return [("salesinvoices", bad_total), ("salesinvoices", bad_currency), ("expenses", bad_amount),
            ("purchaseinvoices", bad_status)]


def generate(vendor_id: str, documents: int = 300, seed: int = 7, broken: bool = True) -> Iterator[tuple[str, dict]]:
    """(collection, document) pairs: about half sales invoices, a quarter each purchases and expenses."""
    rng = random.Random(f"{seed}:{vendor_id}")
    span_days = 300
    for index in range(documents):
        day = START + timedelta(days=rng.randint(0, span_days), hours=rng.randint(8, 18))
        kind = rng.random()
        if kind < 0.5:
            yield "salesinvoices", _invoice(rng, vendor_id, index + 1, True, day)
        elif kind < 0.75:
            yield "purchaseinvoices", _invoice(rng, vendor_id, index + 1, False, day)
        else:
            yield "expenses", _expense(rng, vendor_id, day)
    if broken:
        yield from _broken(rng, vendor_id, START + timedelta(days=100))


def load(db, vendor_ids: list[str], documents: int = 300, seed: int = 7, batch: int = 1000,
         broken: bool = True) -> dict[str, int]:
    """Insert the demo data (and the vendors' documents) in batches; returns how many
    documents were new per collection (ids are seeded, so a second load adds none)."""
    counts: dict[str, int] = {}
    pending: dict[str, list[dict]] = {}

    def flush(collection: str) -> None:
        documents_out = pending.pop(collection)
        try:
            inserted = len(db[collection].insert_many(documents_out, ordered=False).inserted_ids)
        except BulkWriteError as error:
            inserted = error.details.get("nInserted", 0)
        counts[collection] = counts.get(collection, 0) + inserted

    for vendor_id in vendor_ids:
        db.vendors.update_one({"_id": vendor_id}, {"$set": {"vendorId": vendor_id, "name": vendor_id.title(),
                                                              "baseCurrency": "INR"}}, upsert=True)
        for collection, document in generate(vendor_id, documents, seed, broken):
            pending.setdefault(collection, []).append(document)
            if len(pending[collection]) >= batch:
                flush(collection)
    for collection in list(pending):
        flush(collection)
    return counts
