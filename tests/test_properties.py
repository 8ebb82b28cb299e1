"""Property tests: for any valid books, the ledger balances and equals an independent model.

The oracle is `expected_balances`: SPEC §3's table applied in integer cents to the
generated numbers, written here without the implementation's code.
"""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from bson.decimal128 import Decimal128
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.accounts import category_slug
from ledger.kinds import by_type
from ledger.reconcile import active_postings, plan_document
from ledger.sources import Withdrawn
from ledger.verification import balances_of, is_balanced, trial_balance

SYNC_TIME = datetime(2026, 12, 31, tzinfo=UTC)
METHODS = ["cash", "bank", "card", "upi", "cheque", "other"]
CATEGORIES = ["Office Rent", "  misc  ", "Repairs_Maintenance", "Travel & Meals", "software"]
TYPE_OF = {"sales": "sales_invoice", "purchase": "purchase_invoice", "expense": "expense"}
COLLECTION = {"sales": "salesinvoices", "purchase": "purchaseinvoices", "expense": "expenses"}

_ids = itertools.count(1)


# ---- generating the business app's documents -------------------------------------

def as_stored(cents: int, how: str):
    """A cent amount the way some version of the app stored it."""
    value = Decimal(cents).scaleb(-2)
    if how == "str":
        return str(value)
    if how == "decimal128":
        return Decimal128(value)
    if how == "float":
        return float(value)  # its shortest repr is the 2-place decimal
    return int(cents // 100) if cents % 100 == 0 else str(value)


def as_date(moment: datetime, how: str):
    if how == "iso":
        return moment.isoformat().replace("+00:00", "Z")
    if how == "ist":
        return moment.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat()
    return moment


money_form = st.sampled_from(["str", "decimal128", "float", "int"])
date_form = st.sampled_from(["datetime", "iso", "ist"])
moments = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2026, 12, 1)).map(
    lambda m: m.replace(microsecond=m.microsecond // 1000 * 1000, tzinfo=UTC))
cents = st.integers(min_value=0, max_value=2_000_000)


@st.composite
def payments(draw, doc_id: str):
    result = []
    for _ in range(draw(st.integers(0, 3))):
        amount = draw(st.integers(-50_000, 1_000_000).filter(lambda c: c != 0) | st.just(0))
        result.append({"_id": f"{doc_id}-p{next(_ids)}", "cents": amount, "method": draw(st.sampled_from(METHODS)),
                       "date": draw(moments)})
    return result


@st.composite
def invoice_numbers(draw):
    subtotal = draw(cents)
    discount = draw(st.integers(0, subtotal))
    tax = draw(st.integers(0, 400_000))
    round_off = draw(st.sampled_from([-1, 0, 0, 1]))
    if subtotal - discount + tax + round_off < 0:
        round_off = 0
    return {"subtotal": subtotal, "discount": discount, "tax": tax, "total": subtotal - discount + tax + round_off}


@st.composite
def documents(draw, vendor: str = "v1"):
    """A model document: the numbers in cents plus how they are stored (see `to_raw`)."""
    kind = draw(st.sampled_from(["sales", "purchase", "expense"]))
    doc_id = f"{kind[0]}{next(_ids)}"
    model = {"kind": kind, "_id": doc_id, "vendor": vendor, "date": draw(moments), "deleted": draw(st.booleans())
             and draw(st.booleans()), "money_form": draw(money_form), "date_form": draw(date_form)}
    if kind == "expense":
        model.update(amount=draw(cents), tax=draw(st.integers(0, 300_000)), paid=draw(st.booleans()),
                     method=draw(st.sampled_from(METHODS)), category=draw(st.sampled_from(CATEGORIES)))
    else:
        model.update(draw(invoice_numbers()))
        model["status"] = draw(st.sampled_from(["issued", "partially_paid", "paid", "issued", "draft", "void",
                                                "cancelled"]))
        model["payments"] = draw(payments(doc_id))
        model["items"] = draw(st.booleans())
    return model


def to_raw(model: dict, updated_at: datetime | None = None) -> dict:
    """The document as the business app stores it (SPEC §2)."""
    m, d = model["money_form"], model["date_form"]
    raw = {"_id": model["_id"], "vendorId": model["vendor"], "isDeleted": model["deleted"]}
    if updated_at is not None:
        raw["updatedAt"] = updated_at
    if model["kind"] == "expense":
        raw.update(date=as_date(model["date"], d), category=model["category"], description="generated",
                   amount=as_stored(model["amount"], m), taxAmount=as_stored(model["tax"], m),
                   paymentStatus="paid" if model["paid"] else "unpaid")
        if model["paid"]:
            raw["paymentMethod"] = model["method"]
        return raw
    raw.update(invoiceDate=as_date(model["date"], d), currency="INR", status=model["status"],
               subtotal=as_stored(model["subtotal"], m), discountTotal=as_stored(model["discount"], m),
               taxTotal=as_stored(model["tax"], m), total=as_stored(model["total"], m),
               payments=[{"_id": p["_id"], "amount": as_stored(p["cents"], m) if p["cents"] >= 0
                          else str(Decimal(p["cents"]).scaleb(-2)), "date": as_date(p["date"], d),
                          "method": p["method"], "reference": "r"} for p in model["payments"]])
    raw["invoiceNumber" if model["kind"] == "sales" else "billNumber"] = f"N-{model['_id']}"
    if model["items"]:
        raw["items"] = [{"description": "all of it", "quantity": 1, "unitPrice": as_stored(model["subtotal"], "str"),
                         "discount": as_stored(model["discount"], "str"), "taxRate": 18}]
    return raw


# ---- the oracle: SPEC §3 in cents ----------------------------------------------------

def expected_balances(models: list[dict]) -> dict[str, Decimal]:
    """Debits − credits per account for these documents, from the posting table."""
    cents_by_account: dict[str, int] = {}

    def post(account: str, amount: int) -> None:  # + debit, − credit
        cents_by_account[account] = cents_by_account.get(account, 0) + amount

    def settlement(method: str) -> str:
        return "cash" if method == "cash" else "bank"

    for m in models:
        if m is None or m["deleted"]:
            continue
        if m["kind"] == "expense":
            post("expenses:" + category_slug(m["category"]), m["amount"])
            post("input_tax", m["tax"])
            post(settlement(m["method"]) if m["paid"] else "accounts_payable", -(m["amount"] + m["tax"]))
            continue
        if m["status"] in ("draft", "void", "cancelled"):
            continue
        net = m["subtotal"] - m["discount"]
        difference = m["total"] - (net + m["tax"])
        if m["kind"] == "sales":
            post("accounts_receivable", m["total"])
            post("sales", -net)
            post("output_tax", -m["tax"])
            post("round_off", -difference)
            for p in m["payments"]:
                post(settlement(p["method"]), p["cents"])
                post("accounts_receivable", -p["cents"])
        else:
            post("purchases", net)
            post("input_tax", m["tax"])
            post("accounts_payable", -m["total"])
            post("round_off", difference)
            for p in m["payments"]:
                post("accounts_payable", p["cents"])
                post(settlement(p["method"]), -p["cents"])
    return {account: Decimal(c).scaleb(-2) for account, c in sorted(cents_by_account.items()) if c != 0}


def read(model: dict, updated_at=None):
    document = by_type(TYPE_OF[model["kind"]]).read(to_raw(model, updated_at), "INR")
    assert not hasattr(document, "field"), f"a valid document was rejected: {document}"
    return document


def drafts_for(document) -> list:
    """What a valid (posting or withdrawn) document should have posted, by its kind's rules."""
    return [] if isinstance(document, Withdrawn) else by_type(document.type).drafts_of(document)


def fresh_postings(models: list[dict]) -> list:
    result = []
    for model in models:
        if model is not None:
            result.extend(plan_document(drafts_for(read(model)), [], SYNC_TIME).postings)
    return result


# ---- (1) posting generated documents ------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.lists(documents(), min_size=1, max_size=6))
def test_every_entry_balances_and_the_books_equal_the_posting_table(models):
    entries = fresh_postings(models)
    for entry in entries:
        assert is_balanced(entry)
        assert entry.lines, "an entry without lines was posted"
        assert all((line.debit > 0) != (line.credit > 0) for line in entry.lines), "a zero or two-sided line"
        assert all(line.debit.as_tuple().exponent == -2 and line.credit.as_tuple().exponent == -2
                   for line in entry.lines)
    assert len({entry.id for entry in entries}) == len(entries)
    balances = balances_of(entries)
    tb = trial_balance(balances)
    assert tb.total_debit == tb.total_credit
    assert sum(balances.net_balances().values(), Decimal(0)) == 0
    assert balances.net_balances() == expected_balances(models)


# ---- (2) changes reconciled by reversals equal a fresh posting --------------------------

@st.composite
def mutation(draw, model: dict):
    kind = model["kind"]
    choices = ["void", "restore", "edit", "date", "retype", "delete"]
    if kind != "expense":
        choices += ["add_payment", "remove_payment", "payment_date", "payment_amount"]
    return draw(st.sampled_from(choices)), draw(st.randoms(use_true_random=False))


def mutate(model: dict, change: str, rng) -> dict | None:
    """The document after one edit in the app; None when it is deleted from the collection."""
    m = copy.deepcopy(model)
    if change == "delete":
        return None
    if change == "void":
        if m["kind"] == "expense":
            m["deleted"] = True
        else:
            m["status"] = rng.choice(["void", "cancelled", "draft"])
    elif change == "restore":
        m["deleted"] = False
        if m["kind"] != "expense":
            m["status"] = rng.choice(["issued", "paid"])
    elif change == "edit":
        if m["kind"] == "expense":
            m["amount"], m["tax"] = rng.randint(0, 100_000), rng.randint(0, 20_000)
        else:
            subtotal = rng.randint(0, 1_000_000)
            discount = rng.randint(0, subtotal)
            tax = rng.randint(0, 100_000)
            m.update(subtotal=subtotal, discount=discount, tax=tax, total=subtotal - discount + tax)
    elif change == "date":
        m["date"] = m["date"] + timedelta(days=rng.randint(-40, 40), milliseconds=rng.randint(0, 999))
    elif change == "retype":
        m["money_form"] = rng.choice(["str", "decimal128", "float", "int"])
        m["date_form"] = rng.choice(["datetime", "iso", "ist"])
    elif change == "add_payment":
        m["payments"].append({"_id": f"{m['_id']}-p{next(_ids)}", "cents": rng.randint(-10_000, 500_000),
                              "method": rng.choice(METHODS), "date": m["date"] + timedelta(days=rng.randint(0, 30))})
    elif m["payments"]:
        index = rng.randrange(len(m["payments"]))
        if change == "remove_payment":
            m["payments"].pop(index)
        elif change == "payment_date":
            m["payments"][index]["date"] += timedelta(days=rng.randint(1, 9))
        else:
            m["payments"][index]["cents"] = rng.randint(-10_000, 500_000)
    return m


@st.composite
def histories(draw):
    """A document and the states it goes through (the last may be None: hard-deleted)."""
    model = draw(documents())
    states = [model]
    for _ in range(draw(st.integers(1, 4))):
        if states[-1] is None:
            break
        change, rng = draw(mutation(states[-1]))
        states.append(mutate(states[-1], change, rng))
    return states


@settings(max_examples=300, deadline=None)
@given(histories())
def test_reconciling_each_change_equals_posting_the_final_state_from_scratch(states):
    ledger: list = []
    for step, state in enumerate(states):
        when = SYNC_TIME + timedelta(days=step)
        drafts = [] if state is None else drafts_for(read(state, updated_at=when))
        plan = plan_document(drafts, ledger, reversal_date=when)
        before = list(ledger)
        ledger.extend(plan.entries)
        assert ledger[:len(before)] == before  # append-only
        for reversal in plan.reversals:
            original = next(e for e in before if e.id == reversal.reversal_of)
            assert [(line.account, line.debit, line.credit) for line in reversal.lines] == \
                   [(line.account, line.credit, line.debit) for line in original.lines]
            assert reversal.date == when
        # The ledger now carries exactly the current drafts (dates and lines), and a second pass writes nothing.
        assert sorted(_content(e) for e in active_postings(ledger)) == sorted(_content(d) for d in drafts)
        assert plan_document(drafts, ledger, reversal_date=when).is_empty
    assert len({entry.id for entry in ledger}) == len(ledger), "an entry id was used twice"
    assert all(is_balanced(entry) for entry in ledger)
    final = states[-1]
    assert balances_of(ledger).net_balances() == balances_of(fresh_postings([final])).net_balances()
    assert balances_of(ledger).net_balances() == expected_balances([final])


def _content(entry) -> tuple:
    return (entry.unit, entry.date, tuple((line.account, line.debit, line.credit) for line in entry.lines))


def test_oracle_sanity():
    """The oracle itself, on one hand-worked invoice: 1000 − 100 + 162 (+0.01), paid 500 in cash."""
    model = {"kind": "sales", "deleted": False, "status": "paid", "subtotal": 100000, "discount": 10000,
             "tax": 16200, "total": 106201, "payments": [{"cents": 50000, "method": "cash"}]}
    assert expected_balances([model]) == {"accounts_receivable": Decimal("562.01"), "cash": Decimal("500.00"),
                                          "output_tax": Decimal("-162.00"), "round_off": Decimal("-0.01"),
                                          "sales": Decimal("-900.00")}


# ---- (3) the same through the real flow and database -------------------------------------

_vendors = itertools.count(1)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          derandomize=True)
@given(data=st.data())
def test_end_to_end_sync_of_generated_books_and_their_changes(db, store, sync, data):
    vendor = f"prop-{next(_vendors)}"
    models = data.draw(st.lists(documents(vendor), min_size=1, max_size=5))
    for model in models:
        db[COLLECTION[model["kind"]]].insert_one(to_raw(model))
    first = sync(vendor)
    assert first["stats"]["total"]["errors"] == 0
    assert store.entries.balances(vendor).net_balances() == expected_balances(models)

    changed = []
    for model in models:
        change, rng = data.draw(mutation(model))
        new = mutate(model, change, rng)
        collection = db[COLLECTION[model["kind"]]]
        if new is None:
            collection.delete_one({"_id": model["_id"]})
        else:
            collection.replace_one({"_id": model["_id"]}, to_raw(new, updated_at=SYNC_TIME))
        changed.append(new)
    second = sync(vendor, full=True)
    assert second["state"] == "completed" and second["stats"]["total"]["errors"] == 0
    net = store.entries.balances(vendor).net_balances()
    assert net == expected_balances(changed)
    assert sum(net.values(), Decimal(0)) == 0
    assert second["verification"]["ok"] is True
    entries = list(db.ledger_entries.find({"vendorId": vendor}))
    assert len({e["_id"] for e in entries}) == len(entries)
    third = sync(vendor, full=True)
    assert third["stats"]["total"]["synced"] == third["stats"]["total"]["reversed"] == 0
    assert db.ledger_entries.count_documents({"vendorId": vendor}) == len(entries)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          derandomize=True)
@given(data=st.data())
def test_carried_totals_monthly_balances_seal_and_chain_equal_a_full_rebuild(db, store, sync, data):
    """After any history of incremental, selective and full syncs: the chain verifies and its head is the
    seal's; the monthly balances and the seal add up to the entries; the carried open receivable and
    payable are what the ledger holds on its control accounts (all recomputed from scratch here)."""
    from datetime import UTC

    from flows.verify import verify_vendor

    vendor = f"hist-{next(_vendors)}"
    models = data.draw(st.lists(documents(vendor), min_size=2, max_size=5))
    for model in models:
        db[COLLECTION[model["kind"]]].insert_one(to_raw(model))
    kinds_of_sync = st.sampled_from([{}, {"full": True}, {"types": ["sales_invoices", "expenses"]},
                                     {"date_from": "2025-06-01", "date_to": "2026-03-31"}])
    for _ in range(data.draw(st.integers(1, 3))):
        summary = sync(vendor, **data.draw(kinds_of_sync))
        assert summary["state"] == "completed", summary
        run = store.runs.get(summary["syncId"])
        head = store.vendors.head(vendor)
        assert (run.ledger["seq"], run.ledger["hash"]) == (head.seq, head.hash)
        assert verify_vendor(store, vendor)["ok"]
        everything = store.entries.balances(vendor)
        assert store.books.current(vendor).net_balances() == everything.net_balances()
        from ledger.store.codec import balances_from_document

        assert balances_from_document(run.ledger["balances"]).net_balances() == everything.net_balances()
        assert Decimal(run.documents_open["receivable"]) == everything.balance("accounts_receivable")
        assert Decimal(run.documents_open["payable"]) == -everything.balance("accounts_payable")
        for model in data.draw(st.lists(st.sampled_from(models), max_size=2, unique_by=lambda m: m["_id"])):
            change, rng = data.draw(mutation(model))
            new = mutate(model, change, rng)
            collection = db[COLLECTION[model["kind"]]]
            if new is None:
                collection.delete_one({"_id": model["_id"]})
            else:
                collection.replace_one({"_id": model["_id"]},
                                       to_raw(new, updated_at=datetime.now(UTC).replace(microsecond=0)))
