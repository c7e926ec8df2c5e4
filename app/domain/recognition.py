"""Recognition policy: when fee revenue is earned.

A policy answers two questions and nothing else:

* how much of an attributed invoice line is fee revenue (on the invoice date), and
* what fee revenue a work item earns by itself, and on which date.

Expense recoveries, approved-not-sent amounts, collections and WIP do not depend on the policy.
A new policy is a new class here plus an entry in ``RECOGNITION_POLICIES``; report code only
ever sums the fee revenue the facts carry.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Protocol

from app.domain.attribution import AttributedLine, LineKind
from app.domain.money import ZERO
from app.domain.values import FeeType, WorkItem


@dataclass(frozen=True, slots=True)
class EarnedFee:
    """Fee revenue a work item earns by itself (not through an invoice line)."""

    earned_on: date
    amount: Decimal


class RecognitionPolicy(Protocol):
    @property
    def name(self) -> str: ...

    def line_fee_revenue(self, line: AttributedLine) -> Decimal: ...

    def work_item_fee_revenue(self, work_item: WorkItem) -> EarnedFee | None: ...


def billed_fee_revenue(line: AttributedLine) -> Decimal:
    """Rules 1-3: fee lines of counted invoices, before tax."""
    if line.invoice.is_counted and line.line.kind is LineKind.FEE:
        return line.line.amount
    return ZERO


class BillingBasis:
    """The default: revenue is what was invoiced and sent (rules 1-3)."""

    name = "billing"

    def line_fee_revenue(self, line: AttributedLine) -> Decimal:
        return billed_fee_revenue(line)

    def work_item_fee_revenue(self, work_item: WorkItem) -> EarnedFee | None:
        return None


class CompletionBasis:
    """Fixed-fee work earns its whole fee on its completed date, and nothing before.

    The invoice lines attributed to a fixed-fee work item then earn nothing, so the fee is not
    counted twice. All other work follows the billing basis. A fixed-fee item that is completed
    but carries no completed date cannot be dated and earns nothing until Karbon gives one.
    """

    name = "completion"

    def line_fee_revenue(self, line: AttributedLine) -> Decimal:
        if line.work_item is not None and line.work_item.fee_type is FeeType.FIXED_FEE:
            return ZERO
        return billed_fee_revenue(line)

    def work_item_fee_revenue(self, work_item: WorkItem) -> EarnedFee | None:
        if work_item.fee_type is not FeeType.FIXED_FEE or not work_item.is_completed:
            return None
        if work_item.completed_date is None:
            return None
        return EarnedFee(work_item.completed_date, work_item.fixed_fee_value)


RECOGNITION_POLICIES: Mapping[str, RecognitionPolicy] = {
    policy.name: policy for policy in (BillingBasis(), CompletionBasis())
}


def recognition_policy(name: str) -> RecognitionPolicy:
    """The policy a tenant's settings name; raises ``KeyError`` for an unknown name."""
    return RECOGNITION_POLICIES[name]
