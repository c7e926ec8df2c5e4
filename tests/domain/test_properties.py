"""Invariants that hold for any tenant, checked with generated data."""

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from app.domain import (
    MEASURE_NAMES,
    BillingBasis,
    ClientType,
    CompensationPeriod,
    CompletionBasis,
    CostSettings,
    Directory,
    Fact,
    FactSource,
    FeeType,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    LineType,
    Measures,
    TenantRecords,
    aggregate,
    build_facts,
    by_client,
    by_fee_type,
    by_manager,
    by_month,
    by_owner,
    by_staff,
    by_work_item,
    by_work_type,
    evaluate,
    firm_total,
    in_window,
)
from app.domain.attribution import LineKind, billing_lines
from app.domain.figures import sum_measures
from tests.domain.strategies import days, tenants

AS_OF = date(2025, 1, 31)
BILLING = CostSettings(recognition=BillingBasis())
COMPLETION = CostSettings(recognition=CompletionBasis())
POLICIES = st.sampled_from([BILLING, COMPLETION])
settings_profile = settings(max_examples=80, deadline=None)


def facts_of(records: TenantRecords, cost_settings: CostSettings = BILLING) -> list[Fact]:
    return build_facts(Directory(records), cost_settings)


@settings_profile
@given(tenants(), POLICIES)
def test_every_grouping_sums_to_the_firm_total(records: TenantRecords, cs: CostSettings) -> None:
    facts = facts_of(records, cs)
    total = firm_total(facts)
    directory = Directory(records)
    groupings = (by_client, by_work_item, by_staff, by_fee_type, by_work_type, by_month)
    for key in (*groupings, by_owner(directory), by_manager(directory)):
        groups: dict[object, Measures] = aggregate(facts, key)
        assert sum_measures(groups.values()) == total
        for name in MEASURE_NAMES:
            assert sum(getattr(m, name) for m in groups.values()) == getattr(total, name)


@settings_profile
@given(tenants(), POLICIES, st.data())
def test_voiding_an_invoice_never_raises_revenue(
    records: TenantRecords, cs: CostSettings, data: st.DataObject
) -> None:
    assume(records.invoices)
    index = data.draw(st.integers(0, len(records.invoices) - 1))
    invoices = list(records.invoices)
    invoices[index] = replace(invoices[index], status=InvoiceStatus.VOIDED)
    voided = replace(records, invoices=tuple(invoices))
    on_its_date = in_window(invoices[index].invoice_date, invoices[index].invoice_date)
    for where in (None, on_its_date):
        after = firm_total(facts_of(voided, cs), where).fee_revenue
        assert after <= firm_total(facts_of(records, cs), where).fee_revenue


@settings_profile
@given(tenants())
def test_every_counted_line_is_attributed_exactly_once(records: TenantRecords) -> None:
    facts = facts_of(records)
    line_facts = [f for f in facts if f.source is FactSource.INVOICE_LINE]
    seen = [f.source_key for f in line_facts]
    assert len(seen) == len(set(seen))
    work_items = {w.key: w for w in records.work_items}
    expected_revenue = Decimal(0)
    for invoice in records.invoices:
        keys = {line.key for line in billing_lines(invoice)}
        if invoice.is_voided:
            assert not keys & set(seen)
            continue
        assert keys <= set(seen)
        if invoice.is_counted:
            expected_revenue += sum(
                (x.amount for x in billing_lines(invoice) if x.kind is LineKind.FEE), Decimal(0)
            )
    for fact in line_facts:
        assert fact.client_key is not None
        if fact.work_item_key is not None:
            assert fact.client_key == work_items[fact.work_item_key].client_key
    assert firm_total(facts).fee_revenue == expected_revenue


@settings_profile
@given(tenants())
def test_invoice_level_amounts_add_back_up_to_each_counted_invoice(
    records: TenantRecords,
) -> None:
    facts = facts_of(records)
    total = firm_total(facts)
    counted = [i for i in records.invoices if i.is_counted]
    assert total.counted_invoice_total == sum((i.invoice_total for i in counted), Decimal(0))
    assert total.counted_amount_due == sum((i.total_amount_due for i in counted), Decimal(0))


@settings_profile
@given(tenants(), st.data())
def test_cost_is_monotone_in_compensation(records: TenantRecords, data: st.DataObject) -> None:
    assume(records.compensation)
    index = data.draw(st.integers(0, len(records.compensation) - 1))
    extra = data.draw(st.integers(1, 50_000))
    periods = list(records.compensation)
    periods[index] = replace(periods[index], annual_amount=periods[index].annual_amount + extra)
    raised = replace(records, compensation=tuple(periods))
    assert firm_total(facts_of(raised)).cost >= firm_total(facts_of(records)).cost


@settings_profile
@given(tenants(), days, st.integers(1, 400), st.data())
def test_a_raise_after_the_window_leaves_the_windows_cost_alone(
    records: TenantRecords, window_end: date, after: int, data: st.DataObject
) -> None:
    staff_key = data.draw(st.sampled_from([m.key for m in records.staff]))
    raise_ = CompensationPeriod(staff_key, window_end + timedelta(days=after), Decimal(999_999))
    raised = replace(records, compensation=(*records.compensation, raise_))
    window = in_window(date(2000, 1, 1), window_end)
    before = firm_total(facts_of(records), window)
    assert firm_total(facts_of(raised), window).cost == before.cost
    assert firm_total(facts_of(raised), window).uncosted_minutes == before.uncosted_minutes


@settings_profile
@given(tenants(), POLICIES)
def test_wip_is_never_negative(records: TenantRecords, cs: CostSettings) -> None:
    evaluation = evaluate(records, cs, AS_OF)
    for item in evaluation.wip:
        assert item.amount > 0
        assert item.age_days >= 0
        assert item.fee_type is not FeeType.NON_BILLABLE
    for position in evaluation.fixed_fees:
        assert 0 <= position.wip <= position.fee_value or position.fee_value < 0


@settings_profile
@given(tenants())
def test_recognition_policy_changes_only_fee_revenue(records: TenantRecords) -> None:
    billing = firm_total(facts_of(records, BILLING))
    completion = firm_total(facts_of(records, COMPLETION))
    assert replace(billing, fee_revenue=Decimal(0)) == replace(completion, fee_revenue=Decimal(0))


@st.composite
def fully_billed_fixed_fees(draw: st.DrawFn) -> TenantRecords:
    """Every fixed-fee item completed and invoiced (counted) at exactly its fee value."""
    records = draw(tenants())
    items = [
        replace(w, primary_status="Completed", completed_date=w.completed_date or draw(days))
        if w.fee_type is FeeType.FIXED_FEE
        else w
        for w in records.work_items
    ]
    directory = Directory(replace(records, work_items=tuple(items)))
    invoices = [i for i in records.invoices if not _touches_fixed_fee(i, directory)]
    for n, item in enumerate(w for w in items if w.fee_type is FeeType.FIXED_FEE):
        split = draw(st.integers(0, 100))
        fee = item.fixed_fee_value
        first = (fee * split / 100).quantize(Decimal("0.01"))
        invoices.append(_fee_invoice(f"FF{n}", item.key, item.client_key, first, fee - first))
    return replace(records, work_items=tuple(items), invoices=tuple(invoices))


def _touches_fixed_fee(invoice: Invoice, directory: Directory) -> bool:
    return any(
        line.work_item is not None and line.work_item.fee_type is FeeType.FIXED_FEE
        for line in directory.attribute(invoice)
    )


def _fee_invoice(key: str, work_item_key: str, client_key: str, *amounts: Decimal) -> Invoice:
    lines = tuple(
        InvoiceLine(f"{key}L{n}", LineType.ENTITY, work_item_key, amount)
        for n, amount in enumerate(amounts)
    )
    subtotal = sum(amounts, Decimal(0))
    return Invoice(
        key=key,
        number=key,
        status=InvoiceStatus.PAID,
        invoice_date=date(2024, 6, 1),
        client_key=client_key,
        client_type=ClientType.ORGANIZATION,
        client_name="",
        currency="AUD",
        invoice_total=subtotal,
        invoice_sub_total=subtotal,
        total_amount_due=Decimal(0),
        lines=lines,
    )


@settings_profile
@given(fully_billed_fixed_fees())
def test_bases_agree_once_fixed_fees_are_completed_and_billed_at_fee_value(
    records: TenantRecords,
) -> None:
    billing = firm_total(facts_of(records, BILLING))
    completion = firm_total(facts_of(records, COMPLETION))
    assert billing.fee_revenue == completion.fee_revenue


@settings_profile
@given(tenants())
def test_time_based_wip_never_exceeds_the_value_of_all_time(records: TenantRecords) -> None:
    evaluation = evaluate(records, BILLING, AS_OF)
    time_based = [w.amount for w in evaluation.wip if w.fee_type is not FeeType.FIXED_FEE]
    assert sum(time_based, Decimal(0)) <= firm_total(evaluation.facts).standard_value
