"""Deterministic, seeded generator of a simulated Karbon firm, and its evolution over time.

``generate_firm(size, seed, today=...)`` builds a firm's staff and clients, then *simulates* the
firm day by day from the start of its history up to (not including) ``today``: recurring work is
scheduled, staff log time against it (aggregated into weekly timesheets), work gets reviewed and
completed, and a weekly billing run drafts invoices that are approved, sent, paid, exported or
voided on later days. ``advance_firm(firm, days)`` continues the same simulation, so incremental
sync and reconciliation can be tested against a firm that changes under them.

The data reflects the firm as of the *start* of ``today`` (00:00 UTC): every timestamp is before
it, so nothing is dated in the future when ``today`` is the real date.

Consistency rules the simulation keeps (tests may rely on them):

* A time entry is ``Draft`` while a draft invoice holds it, ``InterimBilled``/``Billed`` once an
  approved invoice billed it (``TimeEntry.billed_by`` names it), and ``Unbilled`` otherwise;
  voiding an invoice returns its entries to ``Unbilled``. A ``TimeEntry`` line's
  ``BillableItemEntityKey`` is the time entry's key (itemised invoices), its work item's key
  (invoices by work item) or the client's key (consolidated "Professional services" invoices).
* Fixed-fee work is billed only by ``Entity`` lines keyed to the work item; their sum over
  non-voided invoices never exceeds ``FeeValue``. Its entries become ``Billed`` when the fee is
  fully billed, ``InterimBilled`` after a progress invoice.
* Non-billable work is never invoiced. Only closed weeks (Monday to Sunday) are ever billed.
* Line ``Amount = Quantity * UnitPrice`` exactly; invoice subtotal = sum of line amounts; total =
  subtotal + tax; ``TotalAmountDue`` = total - payments (0 when ``Paid`` or ``Voided``).
* Draft invoices are in ``Firm.invoices`` with status ``Draft`` but are never served.

Sizes: ``tiny`` (seconds of history, for very fast tests), ``small``, ``medium`` (about 25 staff,
800 clients, 4,000 work items, 3 years, 6,000 invoices) and ``large`` (about 150 staff, 5,000
clients, 30,000 work items, 5 years, 40,000 invoices).
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sandbox import names
from sandbox.model import (
    Address,
    ClientGroup,
    ClientTeam,
    Contact,
    DataExpenseItem,
    DataLine,
    DataService,
    DataTax,
    DataTimeEntry,
    DataWork,
    Expense,
    Firm,
    Invoice,
    InvoiceClient,
    LineItem,
    Organization,
    Payment,
    Role,
    TaxConfig,
    Team,
    TimeEntry,
    Timesheet,
    User,
    WorkItem,
)

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
# Release 2025-09-29: new ad hoc invoices may carry tax on the Data tab.
TAX_DATA_CUTOVER = date(2025, 9, 29)


@dataclass(frozen=True, slots=True)
class SizeProfile:
    staff: int
    clients: int
    history_days: int
    group_share: float  # share of clients that belong to a client group
    p_financials: float  # organizations with annual financial statements
    p_quarterly: float  # clients with quarterly sales-tax work
    p_monthly: float  # clients with monthly bookkeeping (recurring fixed fee)
    adhoc_per_year: float  # advisory jobs per client per year
    p_review: float  # clients with an annual non-billable review
    new_clients_per_year: float  # growth, as a share of the client base
    client_time: float  # chance a staff member logs time straight on a client on a given day


SIZES: dict[str, SizeProfile] = {
    "tiny": SizeProfile(4, 12, 91, 0.25, 0.6, 0.4, 0.25, 1.0, 0.4, 0.3, 0.12),
    "small": SizeProfile(8, 60, 365, 0.12, 0.4, 0.25, 0.1, 0.5, 0.25, 0.15, 0.12),
    "medium": SizeProfile(25, 800, 3 * 365, 0.05, 0.3, 0.08, 0.035, 0.15, 0.1, 0.06, 0.08),
    "large": SizeProfile(150, 5000, 5 * 365, 0.03, 0.15, 0.025, 0.007, 0.06, 0.05, 0.04, 0.02),
}

TAX_CONFIGS = (
    TaxConfig("AUD", "GST", Decimal("10"), "AU", "Australia"),
    TaxConfig("USD", None, Decimal("0"), "US", "USA"),
    TaxConfig("GBP", "VAT", Decimal("20"), "GB", "United Kingdom"),
    TaxConfig("NZD", "GST", Decimal("15"), "NZ", "New Zealand"),
    TaxConfig("CAD", "GST", Decimal("5"), "CA", "Canada"),
)

ROLE_RATES = {  # role -> (hourly rate, target utilisation of capacity)
    "Partner": (380, 0.45),
    "Manager": (240, 0.7),
    "Senior Accountant": (175, 0.85),
    "Accountant": (135, 0.85),
    "Bookkeeper": (95, 0.85),
    "Administrator": (75, 0.35),
}

# work type -> (task types for preparers, relative budget in minutes (low, high))
WORK_TYPES = {
    "Individual Tax Return": (("Tax Return", "Client Queries"), (240, 540)),
    "Company Tax Return": (("Tax Return", "Tax Planning"), (480, 1200)),
    "Financial Statements": (("Financial Statements", "Journals"), (600, 1800)),
    "Sales Tax": (("Sales Tax Preparation", "Reconciliation"), (120, 300)),
    "Bookkeeping": (("Bookkeeping", "Bank Reconciliation"), (240, 600)),
    "Advisory": (("Advisory", "Meetings"), (240, 1800)),
    "Client Review": (("Admin", "Meetings"), (60, 180)),
    "Group Tax Planning": (("Tax Planning", "Meetings"), (300, 900)),
}
SECONDARY = {
    "ReadyToStart": ("Send client requests", None),
    "InProgress": ("Preparing", "Information received", None),
    "Waiting": ("Waiting on client", "Waiting on authority"),
    "Completed": ("Lodged", "Sent to client", None),
}
CHUNKS = (30, 45, 60, 60, 90, 120, 120, 180, 240)


def _q(x: Decimal) -> Decimal:
    return x.quantize(CENT, rounding=ROUND_HALF_UP)


def _ascii(s: str) -> str:
    out = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode()
    return "".join(ch for ch in out.lower() if ch.isalnum())


def _monday(d: date) -> date:
    return d - timedelta(days=d.weekday())


def _add_months(d: date, months: int) -> date:
    m = d.month - 1 + months
    y = d.year + m // 12
    m = m % 12 + 1
    return date(y, m, min(d.day, 28))


_KEY_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


class _Keys:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def new(self, length: int | None = None) -> str:
        rng = self.rng
        n = length or (12 if rng.random() < 0.7 else 11)
        alphabet = _KEY_ALPHABET
        while True:
            bits = rng.getrandbits(6 * n)
            chars = []
            for _ in range(n):
                bits, r = divmod(bits, 58)
                chars.append(alphabet[r])
            k = "".join(chars)
            if k not in self.used:
                self.used.add(k)
                return k

    def hex32(self) -> str:
        while True:
            k = f"{self.rng.getrandbits(128):032x}"
            if k not in self.used:
                self.used.add(k)
                return k


@dataclass(slots=True)
class _Service:
    """A client's recurring (or ad hoc) line of work that creates work items over time."""

    client_key: str
    client_type: str
    work_type: str
    period_months: int  # 0: ad hoc (Poisson)
    fee_type: str
    next_start: date
    schedule_key: str | None
    service_key: str | None  # recurring billing service
    rate_per_year: float = 0.0  # ad hoc only
    fixed_fee: Decimal | None = None  # recurring fixed fee per period


@dataclass(slots=True)
class _WIState:
    phase: str = "prep"  # prep / review / done
    prep_budget: int = 0
    progress_billed: bool = False
    progress_plan: bool = False  # fixed fee billed half up front, or T&M billed monthly
    ff_billed: Decimal = ZERO  # sum of Entity lines over non-voided invoices
    unbilled: list[TimeEntry] = field(default_factory=list)
    expenses: list[Expense] = field(default_factory=list)


@dataclass(slots=True)
class _Unit:
    """Something billed on one invoice: a work item's time/fee/expenses, or a client's."""

    kind: str  # "tm", "ff", "client", "service"
    entity_key: str  # work item key or client key
    invoice_type: str  # Final / Interim
    entries: list[TimeEntry]
    expenses: list[Expense]
    fee: Decimal = ZERO  # fixed-fee amount (ff/service)
    wi: WorkItem | None = None


@dataclass
class _Sim:
    rng: random.Random
    keys: _Keys
    profile: SizeProfile
    stats: dict[str, int] = field(default_factory=dict)
    events: list[tuple[date, int, str, str]] = field(default_factory=list)
    seq: int = 0
    services: list[tuple[date, int, _Service]] = field(default_factory=list)
    starting: dict[date, list[str]] = field(default_factory=dict)
    queues: dict[str, list[WorkItem]] = field(default_factory=dict)
    wi_state: dict[str, _WIState] = field(default_factory=dict)
    client_unbilled: dict[str, list[TimeEntry]] = field(default_factory=dict)
    client_expenses: dict[str, list[Expense]] = field(default_factory=dict)
    candidates: dict[str, None] = field(default_factory=dict)  # work items to look at when billing
    client_candidates: dict[str, None] = field(default_factory=dict)
    ts_by_user_week: dict[tuple[str, date], Timesheet] = field(default_factory=dict)
    open_entries: dict[tuple[str, str, str], TimeEntry] = field(default_factory=dict)
    week_timesheets: dict[date, list[Timesheet]] = field(default_factory=dict)
    base_rates: dict[str, int] = field(default_factory=dict)
    daily_minutes: dict[str, int] = field(default_factory=dict)
    user_clients: dict[str, list[str]] = field(default_factory=dict)
    task_keys: dict[str, str] = field(default_factory=dict)
    templates: dict[str, tuple[str, str]] = field(default_factory=dict)
    budget_scale: float = 1.0
    invoice_counter: int = 1000
    payment_counter: int = 0
    udi_counter: dict[str, int] = field(default_factory=dict)
    terms: dict[str, int] = field(default_factory=dict)
    last_invoice_of: dict[str, str] = field(default_factory=dict)  # work item -> last FF invoice
    active_clients: set[str] = field(default_factory=set)  # clients with work, time or invoices
    role_of: dict[str, str] = field(default_factory=dict)  # user key -> role key
    group_of: dict[str, ClientGroup] = field(default_factory=dict)  # member key -> its group
    pools: dict[str, list[str]] = field(default_factory=dict)  # cached key lists for sampling
    role_pools: dict[tuple[str, ...], list[User]] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------
# Public API
# ------------------------------------------------------------------------------------------------


def generate_firm(size: str, seed: int = 0, *, today: date | None = None) -> Firm:
    """Build a firm of ``size`` (tiny/small/medium/large), identical for the same seed and today.

    ``today`` defaults to the current UTC date (pass it explicitly for reproducible tests).
    """
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    profile = SIZES[size]
    today = today or datetime.now(UTC).date()
    rng = random.Random(f"karbon-sandbox:{size}:{seed}")
    keys = _Keys(rng)
    firm_name, domain = names.FIRM_NAMES[seed % len(names.FIRM_NAMES)]
    start = today - timedelta(days=profile.history_days)
    firm = Firm(
        name=firm_name,
        size=size,
        seed=seed,
        today=start,
        history_start=start,
        domain=domain,
        tax=TAX_CONFIGS[seed % len(TAX_CONFIGS)],
    )
    kinds = ("Contact", "Organization", "WorkItem", "TimeEntry", "Timesheet")
    firm.deleted = {k: {} for k in kinds}
    sim = _Sim(rng=rng, keys=keys, profile=profile)
    firm.sim = sim
    _build_staff(firm, sim)
    _build_clients(firm, sim)
    _calibrate(firm, sim)
    _run(firm, sim, today)
    return firm


def advance_firm(firm: Firm, days: int) -> dict[str, int]:
    """Move ``firm`` forward by ``days`` days; returns counts of what changed."""
    if days < 0:
        raise ValueError("days must be >= 0")
    sim = firm.sim
    if not isinstance(sim, _Sim):
        raise ValueError("this firm was not built by generate_firm")
    sim.stats = {}
    _run(firm, sim, firm.today + timedelta(days=days))
    return dict(sorted(sim.stats.items()))


# ------------------------------------------------------------------------------------------------
# Staff and clients
# ------------------------------------------------------------------------------------------------


def _role_mix(n: int) -> list[str]:
    partners = max(1, round(n * 0.1))
    managers = max(1, round(n * 0.15))
    admins = round(n * 0.08)
    bookkeepers = max(1, round(n * 0.12)) if n >= 4 else 0
    seniors = round(n * 0.2)
    accountants = max(1, n - partners - managers - admins - bookkeepers - seniors)
    mix = (
        ["Partner"] * partners
        + ["Manager"] * managers
        + ["Senior Accountant"] * seniors
        + ["Accountant"] * accountants
        + ["Bookkeeper"] * bookkeepers
        + ["Administrator"] * admins
    )
    return mix[:n]


def _build_staff(firm: Firm, sim: _Sim) -> None:
    rng, keys = sim.rng, sim.keys
    for name in ROLE_RATES:
        role = Role(keys.new(), name)
        firm.roles[role.key] = role
    roles_by_name = {r.name: r for r in firm.roles.values()}
    everyone = Team(keys.new(), "All Staff")
    firm.teams[everyone.key] = everyone
    for tname in ("Tax", "Bookkeeping", "Advisory", "Operations"):
        t = Team(keys.new(), tname, everyone.key)
        firm.teams[t.key] = t
    teams = {t.name: t for t in firm.teams.values()}
    team_for_role = {
        "Partner": "Advisory",
        "Manager": "Tax",
        "Senior Accountant": "Tax",
        "Accountant": "Tax",
        "Bookkeeper": "Bookkeeping",
        "Administrator": "Operations",
    }
    mix = _role_mix(sim.profile.staff)
    used_emails: set[str] = set()
    n_none = max(1, round(len(mix) * 0.07))
    none_slots = {len(mix) - 1 - 3 * i for i in range(n_none)}  # spread over junior staff
    for i, role_name in enumerate(mix):
        first = rng.choice(names.FIRST_NAMES)
        last = rng.choice(names.LAST_NAMES)
        local = f"{_ascii(first)}.{_ascii(last)}"
        email = f"{local}@{firm.domain}"
        n = 2
        while email in used_emails:
            email = f"{local}{n}@{firm.domain}"
            n += 1
        used_emails.add(email)
        rate, _util = ROLE_RATES[role_name]
        base_rate = rate + 5 * rng.randint(-3, 3)
        capacity: int | None = rng.choice((2400, 2400, 2250, 2250, 2250, 1800, 1200))
        if i in none_slots:
            capacity = None
        elif len(mix) >= 20 and i == len(mix) - 2:
            capacity = 0  # entered as zero: Reckonry must treat it like a missing capacity
        perms = ["User"] if role_name not in ("Partner", "Manager") else ["User", "Billing"]
        if role_name == "Partner":
            perms.append("Admin")
        user_teams = [teams[team_for_role[role_name]]]
        if rng.random() < 0.2:
            user_teams.append(teams["Advisory" if role_name != "Partner" else "Tax"])
        user = User(
            key=keys.new(),
            name=f"{first} {last}",
            email=email,
            role=roles_by_name[role_name],
            billable_rate=Decimal(base_rate),
            capacity_minutes_per_week=capacity,
            permissions=perms,
            teams=user_teams,
            created_on=firm.history_start - timedelta(days=rng.randint(30, 3000)),
        )
        firm.users[user.key] = user
        sim.base_rates[user.key] = base_rate
        sim.role_of[user.key] = user.role.key
        weekly = capacity if capacity else 2250
        util = ROLE_RATES[role_name][1]
        sim.daily_minutes[user.key] = int(weekly / 5 * util)
        sim.queues[user.key] = []
        sim.user_clients[user.key] = []
    for wt, (tasks, _b) in WORK_TYPES.items():
        sim.templates[wt] = (keys.new(), f"{wt} template")
        for task in (*tasks, "Review", "Client Communication"):
            if task not in sim.task_keys:
                sim.task_keys[task] = keys.new(12)


def _staff_by_role(firm: Firm, *role_names: str) -> list[User]:
    """Staff with any of ``role_names``, cached on the simulation (the staff never change)."""
    sim = firm.sim
    assert isinstance(sim, _Sim)
    found = sim.role_pools.get(role_names)
    if found is None:
        found = sim.role_pools[role_names] = [
            u for u in firm.users.values() if u.role.name in role_names
        ]
    return found


def _new_team(firm: Firm, sim: _Sim) -> ClientTeam:
    rng = sim.rng
    partners = _staff_by_role(firm, "Partner")
    managers = _staff_by_role(firm, "Manager") or partners
    doers = _staff_by_role(firm, "Senior Accountant", "Accountant", "Bookkeeper") or managers
    owner = rng.choice(partners).key if rng.random() > 0.02 else None
    manager = rng.choice(managers).key if rng.random() > 0.06 else None
    staff = [rng.choice(doers).key]
    if rng.random() < 0.4:
        other = rng.choice(doers).key
        if other not in staff:
            staff.append(other)
    return ClientTeam(owner, manager, staff)


def _address(firm: Firm, sim: _Sim) -> Address:
    rng = sim.rng
    city, state, zip_code = rng.choice(names.CITIES[firm.tax.country_code])
    return Address(
        f"{rng.randint(1, 240)} {rng.choice(names.STREETS)}",
        city,
        state,
        zip_code,
        firm.tax.country_code,
        firm.tax.country,
    )


def _udi(sim: _Sim, name: str) -> str:
    stem = (_ascii(name)[:4] or "CLNT").upper().ljust(4, "X")
    n = sim.udi_counter.get(stem, 0) + 1
    sim.udi_counter[stem] = n
    return f"{stem}{n:03d}"


def _phone(sim: _Sim) -> str:
    return f"0{sim.rng.randint(2, 9)} {sim.rng.randint(1000, 9999)} {sim.rng.randint(1000, 9999)}"


def _stamp(sim: _Sim, d: date, *, fraction: bool = True) -> datetime:
    rng = sim.rng
    secs = rng.randint(6 * 3600, 20 * 3600)
    micro = rng.randint(0, 999_999) if fraction else 0
    return datetime.combine(d, time(), UTC) + timedelta(seconds=secs, microseconds=micro)


def _new_contact(
    firm: Firm, sim: _Sim, created: datetime, contact_type: str, org: Organization | None = None
) -> Contact:
    rng = sim.rng
    first = rng.choice(names.FIRST_NAMES)
    last = rng.choice(names.LAST_NAMES)
    c = Contact(
        key=sim.keys.new(),
        first_name=first,
        last_name=last,
        preferred_name=first[:3] if rng.random() < 0.1 else None,
        salutation=rng.choice(("Mr", "Ms", "Mrs", "Dr")) if rng.random() < 0.6 else None,
        email=f"{_ascii(first)}.{_ascii(last)}{rng.randint(1, 99)}@mail.example",
        phone=_phone(sim) if rng.random() < 0.8 else None,
        address=_address(firm, sim) if rng.random() < 0.75 else None,
        contact_type=contact_type,
        team=_new_team(firm, sim),
        user_defined_identifier="",
        external_key=f"{rng.getrandbits(128):032x}" if rng.random() < 0.3 else None,
        restriction_level="Private" if rng.random() < 0.05 else "Public",
        organization_key=org.key if org else None,
        role_or_title=rng.choice(("Director", "CFO", "Owner", "Bookkeeper")) if org else None,
        created_at=created,
        last_modified=created,
    )
    c.user_defined_identifier = _udi(sim, c.last_name)
    c.business_card_key = sim.keys.new()
    firm.contacts[c.key] = c
    return c


def _new_org(firm: Firm, sim: _Sim, created: datetime, contact_type: str) -> Organization:
    rng = sim.rng
    word = rng.choice(names.BUSINESS_WORDS)
    if rng.random() < 0.5:
        base = f"{word} {rng.choice(names.BUSINESS_KINDS)}"
    else:
        base = f"{rng.choice(names.LAST_NAMES)} {rng.choice(names.BUSINESS_KINDS)}"
    suffix = rng.choice(names.BUSINESS_SUFFIXES)
    full = f"{base} {suffix}".strip()
    slug = _ascii(base)[:20]
    o = Organization(
        key=sim.keys.new(),
        full_name=full,
        email=f"info@{slug}.example",
        phone=_phone(sim) if rng.random() < 0.85 else None,
        website=f"www.{slug}.example" if rng.random() < 0.6 else None,
        address=_address(firm, sim) if rng.random() < 0.85 else None,
        contact_type=contact_type,
        team=_new_team(firm, sim),
        user_defined_identifier=_udi(sim, base),
        external_key=f"{rng.getrandbits(128):032x}" if rng.random() < 0.3 else None,
        restriction_level="Private" if rng.random() < 0.04 else "Public",
        description=f"{base} - client since {created.year}" if rng.random() < 0.3 else None,
        legal_name=f"{base} Pty Ltd" if suffix in ("Pty Ltd", "") else full,
        entity_type=rng.choice(
            (
                "Corporation",
                "Corporation",
                "Limited Liability",
                "Estate or Trust",
                "Partnership",
                "Sole Proprietor",
            )
        ),
        created_at=created,
        last_modified=created,
    )
    o.business_card_key = sim.keys.new()
    firm.organizations[o.key] = o
    return o


def _client_type_choice(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.86:
        return "Client"
    if r < 0.93:
        return "Prospect"
    if r < 0.97:
        return "Past Client"
    return "Other"


def _add_client(firm: Firm, sim: _Sim, created: datetime, *, first_start: date) -> str:
    """Create one client (organization or contact) and its plan of work; returns its key."""
    rng = sim.rng
    ctype = _client_type_choice(rng)
    if rng.random() < 0.55:
        org = _new_org(firm, sim, created, ctype)
        if rng.random() < 0.5:  # a director on the org's card (not itself a client)
            _new_contact(firm, sim, created, "Other", org)
        key, kind, team = org.key, "Organization", org.team
    else:
        c = _new_contact(firm, sim, created, ctype)
        key, kind, team = c.key, "Contact", c.team
    for uk in (team.owner_key, team.manager_key, *team.staff_keys):
        if uk:
            sim.user_clients[uk].append(key)
    sim.terms[key] = rng.choice((7, 14, 14, 30))
    if ctype == "Client":
        _plan_services(sim, key, kind, first_start)
    return key


def _plan_services(sim: _Sim, client_key: str, kind: str, first_start: date) -> None:
    rng, p = sim.rng, sim.profile

    def add(
        work_type: str,
        months: int,
        fee_type: str,
        offset_days: int,
        *,
        recurring_ff: bool = False,
        rate: float = 0.0,
    ) -> None:
        svc = _Service(
            client_key=client_key,
            client_type=kind,
            work_type=work_type,
            period_months=months,
            fee_type=fee_type,
            next_start=first_start + timedelta(days=offset_days),
            schedule_key=sim.keys.new() if months else None,
            service_key=sim.keys.new() if recurring_ff else None,
            rate_per_year=rate,
        )
        if months == 0:
            svc.next_start = first_start + timedelta(days=int(rng.expovariate(rate / 365)))
        _push_service(sim, svc)

    tax_fee = rng.choices(("FixedFee", "TimeAndMaterials", "NonBillable"), (60, 36, 4))[0]
    tax_type = "Company Tax Return" if kind == "Organization" else "Individual Tax Return"
    add(tax_type, 12, tax_fee, rng.randint(0, 364))
    if kind == "Organization" and rng.random() < p.p_financials:
        add(
            "Financial Statements",
            12,
            rng.choice(("FixedFee", "TimeAndMaterials")),
            rng.randint(0, 364),
        )
    if rng.random() < p.p_quarterly:
        add("Sales Tax", 3, rng.choice(("FixedFee", "TimeAndMaterials")), rng.randint(0, 89))
    if rng.random() < p.p_monthly:
        add("Bookkeeping", 1, "FixedFee", rng.randint(0, 27), recurring_ff=True)
    if p.adhoc_per_year > 0:
        add("Advisory", 0, "TimeAndMaterials", 0, rate=p.adhoc_per_year * rng.uniform(0.3, 1.7))
    if rng.random() < p.p_review:
        add("Client Review", 12, "NonBillable", rng.randint(0, 364))


def _push_service(sim: _Sim, svc: _Service) -> None:
    lead = 21 if svc.period_months else 0
    sim.seq += 1
    heapq.heappush(sim.services, (svc.next_start - timedelta(days=lead), sim.seq, svc))


def _build_clients(firm: Firm, sim: _Sim) -> None:
    rng, p = sim.rng, sim.profile
    start = firm.history_start
    client_keys: list[tuple[str, str]] = []
    for _ in range(p.clients):
        created = _stamp(sim, start - timedelta(days=rng.randint(1, 2500)))
        key = _add_client(firm, sim, created, first_start=start)
        kind = "Organization" if key in firm.organizations else "Contact"
        client_keys.append((key, kind))
    # Client groups: families / related entities that share some work.
    n_groups = max(1, round(p.clients * p.group_share / 3))
    clients_only = [
        (k, kind)
        for k, kind in client_keys
        if (
            firm.contacts[k].contact_type
            if kind == "Contact"
            else firm.organizations[k].contact_type
        )
        == "Client"
    ]
    rng.shuffle(clients_only)
    for g in range(n_groups):
        members = clients_only[g * 3 : g * 3 + rng.randint(2, 3)]
        if len(members) < 2:
            break
        first_member = members[0][0]
        member_name = firm.client_name(first_member) or "Group"
        last = member_name.split()[-1] if members[0][1] == "Contact" else member_name.split()[0]
        team = (
            firm.contacts[first_member].team
            if members[0][1] == "Contact"
            else firm.organizations[first_member].team
        )
        grp = ClientGroup(
            key=sim.keys.new(),
            name=f"{last} Family Group" if members[0][1] == "Contact" else f"{last} Group",
            member_keys=[m[0] for m in members],
            team=ClientTeam(team.owner_key, team.manager_key, list(team.staff_keys)),
            created_at=_stamp(sim, start - timedelta(days=rng.randint(1, 900))),
        )
        firm.client_groups[grp.key] = grp
        for m in grp.member_keys:
            sim.group_of[m] = grp
        svc_fee = rng.choice(("FixedFee", "TimeAndMaterials"))
        svc = _Service(
            grp.key,
            "ClientGroup",
            "Group Tax Planning",
            12,
            svc_fee,
            start + timedelta(days=rng.randint(0, 364)),
            sim.keys.new(),
            None,
        )
        _push_service(sim, svc)
        if rng.random() < 0.5:  # occasional ad hoc group advice
            adhoc = _Service(
                grp.key,
                "ClientGroup",
                "Advisory",
                0,
                "TimeAndMaterials",
                start + timedelta(days=rng.randint(0, 200)),
                None,
                None,
                rate_per_year=0.8,
            )
            _push_service(sim, adhoc)


def _calibrate(firm: Firm, sim: _Sim) -> None:
    """Scale work budgets so preparation work is about 90% of what the preparers can log."""
    preparers = _staff_by_role(firm, "Senior Accountant", "Accountant", "Bookkeeper")
    supply = sum(sim.daily_minutes[u.key] for u in preparers) * 261 / 0.85
    demand = 0.0
    for _d, _s, svc in sim.services:
        lo, hi = WORK_TYPES[svc.work_type][1]
        per_year = svc.rate_per_year if svc.period_months == 0 else 12 / svc.period_months
        demand += per_year * (lo + hi) / 2
    demand *= 1 + sim.profile.new_clients_per_year / 2
    sim.budget_scale = max(0.2, 0.9 * supply / demand) if demand else 1.0


# ------------------------------------------------------------------------------------------------
# The daily simulation
# ------------------------------------------------------------------------------------------------


def _bump(sim: _Sim, stat: str, n: int = 1) -> None:
    sim.stats[stat] = sim.stats.get(stat, 0) + n


def _schedule(sim: _Sim, when: date, kind: str, key: str) -> None:
    sim.seq += 1
    heapq.heappush(sim.events, (when, sim.seq, kind, key))


def _run(firm: Firm, sim: _Sim, until: date) -> None:
    day = firm.today
    while day < until:
        _create_work(firm, sim, day)
        _start_work(firm, sim, day)
        _process_events(firm, sim, day)
        if day.weekday() == 0:
            _close_week(firm, sim, day)
            _billing_run(firm, sim, day)
        if day.weekday() < 5:
            _work_day(firm, sim, day)
        _client_changes(firm, sim, day)
        _deletions(firm, sim, day)
        day += timedelta(days=1)
    firm.today = until
    for user in firm.users.values():
        user.billable_rate = Decimal(_rate(firm, sim, user.key, until))


def _rate(firm: Firm, sim: _Sim, user_key: str, d: date) -> int:
    """Hourly rate on ``d``: the base rate plus 5 for every 1 July since history began."""
    a = firm.history_start
    steps = (d.year - a.year) + (d >= date(d.year, 7, 1)) - (a >= date(a.year, 7, 1))
    return sim.base_rates[user_key] + 5 * max(0, steps)


def _client_team(firm: Firm, key: str) -> ClientTeam | None:
    client = firm.client(key)
    return client.team if client is not None else None


def _create_work(firm: Firm, sim: _Sim, day: date) -> None:
    rng = sim.rng
    while sim.services and sim.services[0][0] <= day:
        _d, _s, svc = heapq.heappop(sim.services)
        team = _client_team(firm, svc.client_key)
        if team is None:  # client deleted
            continue
        start = svc.next_start
        title, due, deadline = _title_and_dates(svc, start, rng)
        lo, hi = WORK_TYPES[svc.work_type][1]
        budget = int(rng.uniform(lo, hi) * sim.budget_scale / 15) * 15
        budget = max(30, budget)
        doers = (
            [k for k in team.staff_keys if k in firm.users]
            or [k for k in (team.manager_key, team.owner_key) if k]
            or [next(iter(firm.users))]
        )
        admins = [u.key for u in _staff_by_role(firm, "Administrator")]
        if svc.work_type == "Advisory" and rng.random() < 0.4:
            assignee = team.manager_key or team.owner_key or doers[0]
        elif svc.fee_type == "NonBillable" and admins and rng.random() < 0.5:
            assignee = rng.choice(admins)
        else:
            # The client's usual preparer, unless someone else of the firm has far less on.
            assignee = rng.choice(doers)
            pool = _staff_by_role(firm, "Senior Accountant", "Accountant", "Bookkeeper")
            if pool:
                spare = min(
                    rng.sample(pool, min(3, len(pool))), key=lambda u: len(sim.queues[u.key])
                )
                if len(sim.queues[assignee]) > 2 * len(sim.queues[spare.key]) + 3:
                    assignee = spare.key
        reviewer = (
            (team.owner_key if rng.random() < 0.4 else None) or team.manager_key or team.owner_key
        )
        if reviewer == assignee:
            reviewer = team.owner_key if team.owner_key != assignee else None
        helpers = [k for k in doers if k != assignee][:1] if rng.random() < 0.35 else []
        fee_value = None
        if svc.fee_type == "FixedFee":
            if svc.service_key:
                if svc.fixed_fee is None:
                    hours = budget / 60
                    svc.fixed_fee = Decimal(
                        max(100, round(hours * 150 * rng.uniform(0.9, 1.3) / 10) * 10)
                    )
                fee_value = svc.fixed_fee
            else:
                rate = sim.base_rates.get(assignee, 150)
                fee_value = Decimal(
                    max(150, round(budget / 60 * rate * rng.uniform(0.8, 1.3) / 50) * 50)
                )
        client_name = firm.client_name(svc.client_key) or ""
        group_key = group_name = None
        grp = sim.group_of.get(svc.client_key) if svc.client_type != "ClientGroup" else None
        if grp is not None:
            group_key, group_name = grp.key, grp.name
        role_of = sim.role_of
        sim.active_clients.add(svc.client_key)
        assignments = [(role_of[assignee], assignee)]
        if reviewer:
            assignments.append((role_of[reviewer], reviewer))
        template = sim.templates[svc.work_type]
        wi = WorkItem(
            key=sim.keys.new(),
            title=title,
            client_key=svc.client_key,
            client_type=svc.client_type,
            client_name=client_name,
            related_client_group_key=group_key,
            related_client_group_name=group_name,
            assignee_key=assignee,
            work_type=svc.work_type,
            start_date=start,
            due_date=due,
            deadline_date=deadline,
            completed_date=None,
            primary_status="Planned",
            secondary_status=None,
            fee_type=svc.fee_type,
            fee_value=fee_value,
            description=f"{svc.work_type} for {client_name}",
            work_template_key=template[0] if svc.period_months else None,
            work_template_title=template[1] if svc.period_months else None,
            work_schedule_key=svc.schedule_key,
            service_key=svc.service_key,
            role_assignments=assignments,
            helper_keys=helpers,
            reviewer_key=reviewer,
            created_at=_stamp(sim, day),
            budget_minutes=budget,
        )
        firm.work_items[wi.key] = wi
        st = _WIState(
            prep_budget=budget if not reviewer else max(15, int(budget * 0.85 / 15) * 15),
            progress_plan=rng.random() < 0.3,
        )
        sim.wi_state[wi.key] = st
        _bump(sim, "work_items_created")
        when = max(start, day)
        sim.starting.setdefault(when, []).append(wi.key)
        # next instance
        if svc.period_months:
            svc.next_start = _add_months(svc.next_start, svc.period_months)
        else:
            gap = max(14, int(rng.expovariate(svc.rate_per_year / 365)))
            svc.next_start = start + timedelta(days=gap)
        _push_service(sim, svc)


def _title_and_dates(
    svc: _Service, start: date, rng: random.Random
) -> tuple[str, date, date | None]:
    wt = svc.work_type
    if wt in (
        "Individual Tax Return",
        "Company Tax Return",
        "Financial Statements",
        "Group Tax Planning",
    ):
        year = start.year if start.month >= 7 else start.year - 1
        title = f"{year}-{str(year + 1)[2:]} {wt}"
        due = start + timedelta(days=rng.choice((45, 60, 75)))
        deadline = (
            due + timedelta(days=rng.choice((14, 30))) if wt != "Group Tax Planning" else None
        )
    elif wt == "Sales Tax":
        q = (start.month - 1) // 3 + 1
        title = f"Sales Tax Q{q} {start.year}"
        due = start + timedelta(days=28)
        deadline = due
    elif wt == "Bookkeeping":
        title = f"Bookkeeping {start.strftime('%b %Y')}"
        due = start + timedelta(days=20)
        deadline = None
    elif wt == "Client Review":
        title = f"Annual Client Review {start.year}"
        due = start + timedelta(days=30)
        deadline = None
    else:
        topic = rng.choice(
            (
                "Cash flow forecast",
                "Business structure",
                "Succession planning",
                "Grant application",
                "Property purchase",
                "Budget review",
                "Software setup",
                "Due diligence",
            )
        )
        title = f"Advisory - {topic}"
        due = start + timedelta(days=rng.choice((21, 30, 45, 60)))
        deadline = None
    return title, due, deadline


def _start_work(firm: Firm, sim: _Sim, day: date) -> None:
    for key in sim.starting.pop(day, ()):
        wi = firm.work_items.get(key)
        if wi is None or wi.primary_status != "Planned":
            continue
        wi.primary_status = "ReadyToStart"
        wi.secondary_status = sim.rng.choice(SECONDARY["ReadyToStart"])
        for uk in (wi.assignee_key, *wi.helper_keys):
            if uk in sim.queues:
                bisect.insort(sim.queues[uk], wi, key=_queue_order)
        if wi.fee_type != "NonBillable":
            sim.candidates[wi.key] = None


def _timesheet(firm: Firm, sim: _Sim, user: User, week: date) -> Timesheet:
    ts = sim.ts_by_user_week.get((user.key, week))
    if ts is None:
        ts = Timesheet(
            key=sim.keys.new(),
            user_key=user.key,
            start_date=week,
            end_date=week + timedelta(days=6),
            status="Draft",
            entries=[],
            status_changed_on=week,
        )
        sim.ts_by_user_week[(user.key, week)] = ts
        sim.week_timesheets.setdefault(week, []).append(ts)
        firm.timesheets[ts.key] = ts
        _bump(sim, "timesheets_created")
    return ts


def _log(
    firm: Firm,
    sim: _Sim,
    user: User,
    day: date,
    minutes: int,
    task: str,
    wi: WorkItem | None,
    client_key: str,
    client_type: str,
) -> None:
    week = _monday(day)
    ts = _timesheet(firm, sim, user, week)
    entity = wi.key if wi else client_key
    agg = (ts.key, entity, task)
    entry = sim.open_entries.get(agg)
    if entry is None:
        key = "-".join((client_key, entity, user.key, user.role.key, sim.task_keys[task], ts.key))
        entry = TimeEntry(
            key=key,
            timesheet_key=ts.key,
            user_key=user.key,
            entity_key=entity,
            work_item_key=wi.key if wi else None,
            client_key=client_key,
            client_type=client_type,
            role_name=user.role.name,
            task_type_name=task,
            minutes=0,
            hourly_rate=Decimal(_rate(firm, sim, user.key, week)),
            descriptions=[],
        )
        ts.entries.append(entry)
        sim.open_entries[agg] = entry
        if wi is not None:
            if wi.fee_type != "NonBillable":
                sim.wi_state[wi.key].unbilled.append(entry)
        else:
            sim.client_unbilled.setdefault(client_key, []).append(entry)
            sim.client_candidates[client_key] = None
        sim.active_clients.add(client_key)
        _bump(sim, "time_entries_created")
    entry.minutes += minutes
    if len(entry.descriptions) < 3 and sim.rng.random() < 0.5:
        entry.descriptions.append(sim.rng.choice(names.TIME_DESCRIPTIONS))
    _bump(sim, "minutes_logged", minutes)
    if wi is not None:
        wi.logged_minutes += minutes


def _work_day(firm: Firm, sim: _Sim, day: date) -> None:
    rng = sim.rng
    for user in firm.users.values():
        target = sim.daily_minutes[user.key]
        if target <= 0:
            continue
        left = int(target * (0.6 + 0.8 * rng.random()) / 15) * 15
        queue = sim.queues[user.key]  # sorted by due date; dead items are dropped as met
        i = worked = 0
        while i < len(queue) and left >= 15 and worked < 4:
            wi = queue[i]
            st = sim.wi_state[wi.key]
            if (
                wi.primary_status == "Completed"
                or wi.key not in firm.work_items
                or (st.phase == "review" and wi.reviewer_key != user.key)
                or (st.phase == "prep" and user.key not in (wi.assignee_key, *wi.helper_keys))
            ):
                queue.pop(i)
                continue
            if wi.waiting_until is not None:
                if day < wi.waiting_until:
                    i += 1
                    continue
                wi.waiting_until = None
                wi.primary_status = "InProgress"
                wi.secondary_status = "Information received"
            phase_budget = st.prep_budget if st.phase == "prep" else wi.budget_minutes
            limit = phase_budget - wi.logged_minutes
            limit = max(15, -(-limit // 15) * 15)
            chunk = min(left, limit, rng.choice(CHUNKS))
            tasks = WORK_TYPES[wi.work_type][0]
            task = "Review" if st.phase == "review" else tasks[0 if rng.random() < 0.7 else 1]
            _log(firm, sim, user, day, chunk, task, wi, wi.client_key, wi.client_type)
            left -= chunk
            worked += 1
            i += 1
            if wi.primary_status in ("ReadyToStart", "Planned"):
                wi.primary_status = "InProgress"
                wi.secondary_status = "Preparing"
            _after_log(firm, sim, wi, day)
        # Time straight on a client (calls, quick questions), no work item.
        if left >= 15 and rng.random() < sim.profile.client_time and sim.user_clients[user.key]:
            ck = rng.choice(sim.user_clients[user.key])
            ctype = firm.client_type(ck)
            if ctype is not None:
                grp = sim.group_of.get(ck)
                if grp is not None and rng.random() < 0.1:  # ...or on its client group
                    ck, ctype = grp.key, "ClientGroup"
                _log(
                    firm,
                    sim,
                    user,
                    day,
                    min(left, rng.choice((15, 15, 30, 45))),
                    "Client Communication",
                    None,
                    ck,
                    ctype,
                )


def _queue_order(wi: WorkItem) -> tuple[date, str]:
    return wi.due_date, wi.key


def _after_log(firm: Firm, sim: _Sim, wi: WorkItem, day: date) -> None:
    rng = sim.rng
    st = sim.wi_state[wi.key]
    if st.phase == "prep" and wi.logged_minutes >= st.prep_budget:
        if wi.reviewer_key and wi.reviewer_key in sim.queues and st.prep_budget < wi.budget_minutes:
            st.phase = "review"
            wi.secondary_status = None
            bisect.insort(sim.queues[wi.reviewer_key], wi, key=_queue_order)
        else:
            _complete(firm, sim, wi, day)
            return
    elif st.phase == "review" and wi.logged_minutes >= wi.budget_minutes:
        _complete(firm, sim, wi, day)
        return
    if rng.random() < 0.015:
        wi.primary_status = "Waiting"
        wi.secondary_status = rng.choice(SECONDARY["Waiting"])
        wi.waiting_until = day + timedelta(days=rng.randint(3, 21))


def _complete(firm: Firm, sim: _Sim, wi: WorkItem, day: date) -> None:
    rng = sim.rng
    st = sim.wi_state[wi.key]
    st.phase = "done"
    wi.primary_status = "Completed"
    wi.secondary_status = rng.choice(SECONDARY["Completed"])
    wi.completed_date = day
    wi.waiting_until = None
    _bump(sim, "work_items_completed")
    if wi.fee_type != "NonBillable":
        sim.candidates[wi.key] = None
        if wi.work_type in ("Individual Tax Return", "Company Tax Return") and rng.random() < 0.35:
            _add_expense(
                firm,
                sim,
                wi.key,
                "WorkItem",
                wi.client_key,
                "Lodgement fee",
                Decimal(rng.choice((55, 75, 95, 120))),
                day,
                st,
            )
        elif wi.work_type == "Financial Statements" and rng.random() < 0.25:
            _add_expense(
                firm,
                sim,
                wi.key,
                "WorkItem",
                wi.client_key,
                "Company annual review fee",
                Decimal("321.00"),
                day,
                st,
            )
        elif rng.random() < 0.05:
            _add_expense(
                firm,
                sim,
                wi.key,
                "WorkItem",
                wi.client_key,
                "Printing and binding",
                Decimal(rng.randint(15, 90)),
                day,
                st,
            )


def _add_expense(
    firm: Firm,
    sim: _Sim,
    entity_key: str,
    entity_type: str,
    client_key: str,
    description: str,
    amount: Decimal,
    day: date,
    st: _WIState | None,
) -> None:
    e = Expense(sim.keys.hex32(), entity_key, entity_type, client_key, description, day, _q(amount))
    firm.expenses[e.key] = e
    if st is not None:
        st.expenses.append(e)
    else:
        sim.client_expenses.setdefault(client_key, []).append(e)
        sim.client_candidates[client_key] = None
    _bump(sim, "expenses_created")


def _close_week(firm: Firm, sim: _Sim, monday: date) -> None:
    """Monday: last week's timesheets are submitted; its entries can no longer grow."""
    rng = sim.rng
    last_week = monday - timedelta(days=7)
    sim.week_timesheets.pop(monday - timedelta(days=35), None)
    for ts in sim.week_timesheets.get(last_week, ()):
        for e in ts.entries:
            sim.open_entries.pop((ts.key, e.entity_key, e.task_type_name), None)
        if ts.key not in firm.timesheets:
            continue
        if rng.random() < 0.92:
            ts.status, ts.status_changed_on = "Submitted", monday
            _schedule(sim, monday + timedelta(days=rng.randint(1, 6)), "ts_review", ts.key)
        else:  # submitted late
            _schedule(sim, monday + timedelta(days=rng.randint(2, 12)), "ts_submit", ts.key)


# ------------------------------------------------------------------------------------------------
# Billing
# ------------------------------------------------------------------------------------------------


def _billing_run(firm: Firm, sim: _Sim, monday: date) -> None:
    cutoff = monday - timedelta(days=1)
    first_of_month = monday.day <= 7
    by_client: dict[str, list[_Unit]] = {}
    recurring: dict[str, list[_Unit]] = {}
    for wk in list(sim.candidates):
        wi = firm.work_items.get(wk)
        if wi is None:
            sim.candidates.pop(wk, None)
            continue
        st = sim.wi_state[wk]
        done = wi.completed_date is not None and wi.completed_date <= cutoff
        idle = not done and (
            not st.progress_plan
            or (
                not first_of_month
                and (
                    wi.fee_type == "TimeAndMaterials" or st.progress_billed or not wi.logged_minutes
                )
            )
        )
        if idle and (not wi.service_key or st.ff_billed >= (wi.fee_value or ZERO)):
            continue  # nothing can be billed for it this week
        if wi.fee_type == "TimeAndMaterials":
            st.unbilled = [e for e in st.unbilled if e.billed_status == "Unbilled"]
        closed = [
            e
            for e in st.unbilled
            if e.billed_status == "Unbilled"
            and e.timesheet_key in firm.timesheets
            and firm.timesheets[e.timesheet_key].end_date <= cutoff
        ]
        expenses = [x for x in st.expenses if x.billed_by is None and x.date <= cutoff]
        unit: _Unit | None = None
        if wi.fee_type == "TimeAndMaterials":
            if done:
                if closed or expenses:
                    unit = _Unit("tm", wk, "Final", closed, expenses, wi=wi)
                if not [e for e in st.unbilled if e.billed_status == "Unbilled"] and not unit:
                    sim.candidates.pop(wk, None)
            elif (
                first_of_month
                and closed
                and st.progress_plan
                and wi.start_date <= cutoff - timedelta(days=28)
            ):
                value = sum((e.standard_value for e in closed), ZERO)
                if value >= 500:
                    unit = _Unit("tm", wk, "Interim", closed, [], wi=wi)
        elif wi.fee_type == "FixedFee":
            fee = wi.fee_value or ZERO
            remaining = fee - st.ff_billed
            if wi.service_key:
                if remaining > 0 and wi.start_date <= monday:
                    unit = _Unit("service", wk, "Final", [], [], fee=remaining, wi=wi)
                elif done:
                    marked = _mark_ff_entries(firm, sim, wi, st, "Billed")
                    if expenses:
                        unit = _Unit("ff", wk, "Final", [], expenses, fee=ZERO, wi=wi)
                    elif marked:
                        sim.candidates.pop(wk, None)
            elif done:
                if remaining > 0 or expenses:
                    unit = _Unit("ff", wk, "Final", [], expenses, fee=max(remaining, ZERO), wi=wi)
                elif _mark_ff_entries(firm, sim, wi, st, "Billed"):
                    sim.candidates.pop(wk, None)
            elif (
                st.progress_plan
                and not st.progress_billed
                and fee >= 1500
                and wi.logged_minutes > 0
                and remaining == fee
            ):
                unit = _Unit("ff", wk, "Interim", [], [], fee=_q(fee / 2), wi=wi)
        if unit is not None:
            bill_to = _bill_to(firm, wi.client_key)
            if bill_to is None:
                continue
            target = recurring if unit.kind == "service" else by_client
            target.setdefault(bill_to, []).append(unit)
    # Time and expenses straight on clients.
    for ck in list(sim.client_candidates):
        entries = [
            e
            for e in sim.client_unbilled.get(ck, ())
            if e.billed_status == "Unbilled"
            and e.timesheet_key in firm.timesheets
            and firm.timesheets[e.timesheet_key].end_date <= cutoff
        ]
        expenses = [x for x in sim.client_expenses.get(ck, ()) if x.billed_by is None]
        sim.client_unbilled[ck] = [
            e for e in sim.client_unbilled.get(ck, ()) if e.billed_status == "Unbilled"
        ]
        if not entries and not expenses:
            if not sim.client_unbilled[ck]:
                sim.client_candidates.pop(ck, None)
            continue
        bill_to = _bill_to(firm, ck)
        if bill_to is None:
            continue
        oldest = min(
            [firm.timesheets[e.timesheet_key].end_date for e in entries]
            + [x.date for x in expenses]
        )
        if bill_to in by_client or (cutoff - oldest).days >= 28:
            by_client.setdefault(bill_to, []).append(
                _Unit("client", ck, "Final", entries, expenses)
            )
    for bill_to, units in by_client.items():
        _create_invoice(firm, sim, monday, bill_to, units, recurring=False)
    for bill_to, units in recurring.items():
        _create_invoice(firm, sim, monday, bill_to, units, recurring=True)


def _mark_ff_entries(firm: Firm, sim: _Sim, wi: WorkItem, st: _WIState, status: str) -> bool:
    """Mark a fully billed fixed-fee item's entries as billed by its last invoice; False (and
    nothing marked) while that invoice is still a draft."""
    inv = sim.last_invoice_of.get(wi.key)
    if inv is None or firm.invoices[inv].status == "Draft":
        return False
    for e in st.unbilled:
        if e.billed_status in ("Unbilled", "InterimBilled"):
            e.billed_status, e.billed_by = status, inv
    return True


def _bill_to(firm: Firm, client_key: str) -> str | None:
    if client_key in firm.client_groups:
        for m in firm.client_groups[client_key].member_keys:
            if m in firm.contacts or m in firm.organizations:
                return m
        return None
    if client_key in firm.contacts or client_key in firm.organizations:
        return client_key
    return None


def _tax_for(firm: Firm, exempt: bool) -> tuple[Decimal | None, str | None]:
    tax = firm.tax
    if tax.name is None:
        return None, None
    if exempt:
        return Decimal("0"), f"{tax.name} Free"
    return tax.rate, tax.name


def _tax_amount(amount: Decimal, rate: Decimal | None) -> Decimal:
    return _q(amount * rate / 100) if rate else ZERO


def _create_invoice(
    firm: Firm, sim: _Sim, day: date, bill_to: str, units: list[_Unit], *, recurring: bool
) -> None:
    rng, keys = sim.rng, sim.keys
    sim.invoice_counter += 1
    key = keys.new()
    if recurring or (day >= TAX_DATA_CUTOVER and rng.random() < 0.5):
        tax_location = "Data"
    else:
        tax_location = "Presentation"
    on_data = tax_location == "Data"
    style = rng.choices(("itemised", "by_work", "consolidated"), (45, 35, 20))[0]
    lines: list[LineItem] = []
    data: list[DataLine] = []
    consolidated = ZERO
    consolidated_data: list[tuple[_Unit, Decimal]] = []

    def add_line(
        kind: str, entity: str, desc: str, qty: Decimal, price: Decimal, exempt: bool = False
    ) -> None:
        amount = _q(qty * price)
        rate, rname = _tax_for(firm, exempt)
        lines.append(
            LineItem(
                key=keys.hex32(),
                billable_item_type=kind,
                billable_item_entity_key=entity,
                description=desc,
                quantity=qty,
                unit_price=price,
                amount=amount,
                tax_rate=None if on_data else rate,
                tax_rate_name=None if on_data else rname,
                tax_amount=ZERO if on_data else _tax_amount(amount, rate),
            )
        )

    def data_tax(amount: Decimal, exempt: bool = False) -> DataTax:
        if not on_data:
            return DataTax(None, None, None)
        rate, rname = _tax_for(firm, exempt)
        return DataTax(rate, rname, _tax_amount(amount, rate) if rate is not None else None)

    for u in units:
        wi = u.wi
        work_type = wi.work_type if wi else "Client Time"
        # --- expenses (own lines, never consolidated) ---
        exp_items: list[DataExpenseItem] = []
        for x in u.expenses:
            exempt = x.description in ("Lodgement fee", "Company annual review fee")
            add_line("Expense", x.entity_key, x.description, Decimal("1"), x.amount, exempt)
            exp_items.append(
                DataExpenseItem(x.key, x.description, x.amount, data_tax(x.amount, exempt))
            )
            x.billed_by = key
        exp_total = sum((x.amount for x in u.expenses), ZERO)
        if u.kind in ("ff", "service"):
            if u.fee > 0:
                label = "progress billing" if u.invoice_type == "Interim" else "fixed fee"
                add_line(
                    "Entity",
                    u.entity_key,
                    f"{wi.title if wi else ''} - {label}",
                    Decimal("1"),
                    u.fee,
                )
            if u.kind == "service":
                service_key = wi.service_key if wi and wi.service_key else u.entity_key
                data.append(
                    DataLine(
                        service_key,
                        "Service",
                        u.fee + exp_total,
                        None,
                        None,
                        DataService(work_type, u.fee, data_tax(u.fee)),
                    )
                )
            else:
                work = (
                    DataWork("Fixed Fee", work_type, u.invoice_type, u.fee, None, data_tax(u.fee))
                    if u.fee > 0
                    else None
                )
                data.append(
                    DataLine(
                        u.entity_key, "Work Item", u.fee + exp_total, work, exp_items or None, None
                    )
                )
            if wi is not None and u.fee > 0:
                st = sim.wi_state[wi.key]
                st.ff_billed += u.fee
                if u.invoice_type == "Interim":
                    st.progress_billed = True
        # --- time and materials ---
        standard = sum((e.standard_value for e in u.entries), ZERO)
        billed = standard
        if u.entries and style != "itemised":
            r = rng.random()
            if r < 0.25:
                billed = _q(standard * Decimal(str(round(rng.uniform(0.75, 0.98), 2))))
            elif r < 0.32:
                billed = _q(standard * Decimal(str(round(rng.uniform(1.02, 1.15), 2))))
        per_entry = _spread(u.entries, billed)
        if u.entries:
            if style == "itemised":
                for e in u.entries:
                    user = firm.users.get(e.user_key)
                    hours = Decimal(e.minutes) / 60
                    add_line(
                        "TimeEntry",
                        e.key,
                        f"{e.task_type_name} - {user.name if user else ''}",
                        hours,
                        e.hourly_rate,
                    )
            elif style == "by_work":
                label = wi.title if wi else "Client services"
                add_line("TimeEntry", u.entity_key, label, Decimal("1"), billed)
            else:
                consolidated += billed
            work_entries = [
                DataTimeEntry(e.key, e.user_key, e.role_name, e.task_type_name, b)
                for e, b in zip(u.entries, per_entry, strict=True)
            ]
            fee_label = "Time and Materials"
            if u.kind == "client":
                work = DataWork(
                    fee_label, work_type, "Final", billed, work_entries, data_tax(billed)
                )
                data.append(
                    DataLine(
                        u.entity_key, "Client", billed + exp_total, work, exp_items or None, None
                    )
                )
            else:
                work = DataWork(
                    fee_label, work_type, u.invoice_type, billed, work_entries, data_tax(billed)
                )
                data.append(
                    DataLine(
                        u.entity_key, "Work Item", billed + exp_total, work, exp_items or None, None
                    )
                )
            consolidated_data.append((u, billed))
            for e in u.entries:
                e.billed_status, e.billed_by = "Draft", key
        elif u.kind in ("tm", "client") and exp_items:
            etype = "Client" if u.kind == "client" else "Work Item"
            data.append(DataLine(u.entity_key, etype, exp_total, None, exp_items, None))
        if wi is not None and u.kind in ("ff", "service") and u.fee > 0:
            sim.last_invoice_of[wi.key] = key
    if consolidated > 0:
        add_line("TimeEntry", bill_to, "Professional services", Decimal("1"), consolidated)
    if not lines:
        sim.invoice_counter -= 1
        return
    client_contact = firm.contacts.get(bill_to)
    client_org = firm.organizations.get(bill_to)
    if client_org is not None:
        iclient = InvoiceClient(
            bill_to, "Organization", client_org.full_name, client_org.address, client_org.email
        )
    else:
        assert client_contact is not None
        iclient = InvoiceClient(
            bill_to,
            "Contact",
            client_contact.full_name,
            client_contact.address,
            client_contact.email,
        )
    created = _stamp(sim, day, fraction=False)
    inv = Invoice(
        key=key,
        number=f"KIN-{sim.invoice_counter}",
        client=iclient,
        invoice_date=day,
        payment_due_date=day + timedelta(days=sim.terms.get(bill_to, 14)),
        currency=firm.tax.currency,
        payment_instructions=rng.choice(names.PAYMENT_INSTRUCTIONS),
        status="Draft",
        tax_location=tax_location,
        recurring=recurring,
        line_items=lines,
        data=data,
        payments=[],
        created_at=created,
        updated_at=created,
    )
    for u in units:
        if u.kind in ("ff", "service") and u.fee > 0 and u.wi is not None:
            inv.fixed_fee_billed[u.wi.key] = inv.fixed_fee_billed.get(u.wi.key, ZERO) + u.fee
    firm.invoices[key] = inv
    sim.active_clients.add(bill_to)
    _bump(sim, "invoices_drafted")
    # Drafts wait for a manager's review: about a week, sometimes a month.
    delay = rng.randint(1, 12) if rng.random() < 0.9 else rng.randint(13, 30)
    _schedule(sim, day + timedelta(days=delay), "approve", key)


def _spread(entries: list[TimeEntry], billed: Decimal) -> list[Decimal]:
    """Split ``billed`` over entries in proportion to standard value, summing exactly."""
    if not entries:
        return []
    standard = [e.standard_value for e in entries]
    total = sum(standard, ZERO)
    if total == 0:
        return [ZERO] * (len(entries) - 1) + [billed]
    out = [_q(billed * s / total) for s in standard[:-1]]
    out.append(billed - sum(out, ZERO))
    return out


# ------------------------------------------------------------------------------------------------
# Scheduled events: timesheet approvals and the invoice life cycle
# ------------------------------------------------------------------------------------------------


def _process_events(firm: Firm, sim: _Sim, day: date) -> None:
    while sim.events and sim.events[0][0] <= day:
        _d, _s, kind, key = heapq.heappop(sim.events)
        handler = _HANDLERS[kind]
        handler(firm, sim, day, key)


def _ts_submit(firm: Firm, sim: _Sim, day: date, key: str) -> None:
    ts = firm.timesheets.get(key)
    if ts is None or ts.status != "Draft":
        return
    ts.status, ts.status_changed_on = "Submitted", day
    _schedule(sim, day + timedelta(days=sim.rng.randint(1, 6)), "ts_review", key)


def _ts_review(firm: Firm, sim: _Sim, day: date, key: str) -> None:
    ts = firm.timesheets.get(key)
    if ts is None or ts.status != "Submitted":
        return
    if sim.rng.random() < 0.04:
        ts.status, ts.status_changed_on = "Declined", day
        _bump(sim, "timesheets_declined")
        if sim.rng.random() < 0.8:
            _schedule(sim, day + timedelta(days=sim.rng.randint(2, 8)), "ts_resubmit", key)
    else:
        ts.status, ts.status_changed_on = "Approved", day
        _bump(sim, "timesheets_approved")


def _ts_resubmit(firm: Firm, sim: _Sim, day: date, key: str) -> None:
    ts = firm.timesheets.get(key)
    if ts is None or ts.status != "Declined":
        return
    ts.status, ts.status_changed_on = "Submitted", day
    _schedule(sim, day + timedelta(days=sim.rng.randint(1, 4)), "ts_review", key)


def _inv(firm: Firm, key: str, status: str) -> Invoice | None:
    inv = firm.invoices.get(key)
    return inv if inv is not None and inv.status == status else None


def _approve(firm: Firm, sim: _Sim, day: date, key: str) -> None:
    inv = _inv(firm, key, "Draft")
    if inv is None:
        return
    rng = sim.rng
    inv.status = "Approved"
    inv.updated_at = _stamp(sim, day, fraction=False)
    interim_units = {d.entity_key for d in inv.data if d.work and d.work.invoice_type == "Interim"}
    for d in inv.data:
        if d.work and d.work.time_entries:
            status = "InterimBilled" if d.entity_key in interim_units else "Billed"
            for dte in d.work.time_entries:
                e = _entry(firm, sim, dte.time_entry_key)
                if e is not None and e.billed_by == key:
                    e.billed_status = status
    for wk, _amount in inv.fixed_fee_billed.items():
        wi = firm.work_items.get(wk)
        if wi is None:
            continue
        st = sim.wi_state[wk]
        fully = st.ff_billed >= (wi.fee_value or ZERO)
        if wi.completed_date is not None and fully:
            for e in st.unbilled:
                if e.billed_status in ("Unbilled", "InterimBilled"):
                    e.billed_status, e.billed_by = "Billed", key
        elif not fully:
            for e in st.unbilled:
                if (
                    e.billed_status == "Unbilled"
                    and firm.timesheets.get(e.timesheet_key)
                    and (firm.timesheets[e.timesheet_key].end_date < inv.invoice_date)
                ):
                    e.billed_status, e.billed_by = "InterimBilled", key
    _bump(sim, "invoices_approved")
    r = rng.random()
    if r < 0.85:
        delay = rng.randint(0, 3)
    elif r < 0.96:
        delay = rng.randint(5, 30)
    else:
        delay = rng.randint(40, 150)  # approved and left unsent for months
    if rng.random() < 0.01:
        _schedule(sim, day + timedelta(days=max(1, delay)), "void", key)
    else:
        _schedule(sim, day + timedelta(days=delay), "send", key)


def _entry(firm: Firm, sim: _Sim, key: str) -> TimeEntry | None:
    ts_key = key.rsplit("-", 1)[-1]
    ts = firm.timesheets.get(ts_key)
    if ts is None:
        return None
    for e in ts.entries:
        if e.key == key:
            return e
    return None


def _send(firm: Firm, sim: _Sim, day: date, key: str) -> None:
    inv = _inv(firm, key, "Approved")
    if inv is None:
        return
    rng = sim.rng
    inv.sent_on = day
    inv.pdf_token = f"{rng.getrandbits(160):040x}"
    inv.updated_at = _stamp(sim, day, fraction=False)
    _bump(sim, "invoices_sent")
    if rng.random() < 0.08:
        inv.status = "Exported"  # handed to the accounting system; payments tracked there
        _bump(sim, "invoices_exported")
        return
    inv.status = "AwaitingPayment"
    r = rng.random()
    if r < 0.025:
        _schedule(sim, day + timedelta(days=rng.randint(3, 30)), "void", key)
    elif r < 0.97:
        wait = max(1, int(rng.lognormvariate(math.log(18), 0.6)))
        kind = "part_pay" if rng.random() < 0.1 else "pay"
        _schedule(sim, day + timedelta(days=wait), kind, key)
    # else: never paid (bad debt)


def _pay(firm: Firm, sim: _Sim, day: date, key: str, *, partial: bool = False) -> None:
    inv = _inv(firm, key, "AwaitingPayment")
    if inv is None:
        return
    rng = sim.rng
    due = inv.total_amount_due
    amount = _q(due * Decimal(str(round(rng.uniform(0.3, 0.7), 2)))) if partial else due
    if amount <= 0:
        amount = due
    sim.payment_counter += 1
    inv.payments.append(
        Payment(
            sim.keys.new(),
            f"KPY-{sim.payment_counter:04d}",
            rng.choice(("ManualPayment", "Payment")),
            day,
            amount,
        )
    )
    inv.updated_at = _stamp(sim, day, fraction=False)
    if partial:
        _bump(sim, "invoices_part_paid")
        _schedule(sim, day + timedelta(days=rng.randint(7, 40)), "pay", key)
    else:
        inv.status = "Paid"
        _bump(sim, "invoices_paid")


def _void(firm: Firm, sim: _Sim, day: date, key: str) -> None:
    inv = firm.invoices.get(key)
    if inv is None or inv.status not in ("Approved", "AwaitingPayment") or inv.payments:
        return
    inv.status = "Voided"
    inv.voided_on = day
    inv.updated_at = _stamp(sim, day, fraction=False)
    _bump(sim, "invoices_voided")
    # Release what it billed so the next billing run re-bills it.
    for d in inv.data:
        for dte in d.work.time_entries if d.work and d.work.time_entries else ():
            e = _entry(firm, sim, dte.time_entry_key)
            if e is not None and e.billed_by == key:
                e.billed_status, e.billed_by = "Unbilled", None
                wst = sim.wi_state.get(e.work_item_key or "")
                if wst is not None and e not in wst.unbilled:
                    wst.unbilled.append(e)
                if e.work_item_key is None:
                    sim.client_unbilled.setdefault(e.client_key, []).append(e)
                    sim.client_candidates[e.client_key] = None
    for d in inv.data:
        for item in d.expenses or ():
            x = firm.expenses.get(item.expense_key)
            if x is None or x.billed_by != key:
                continue
            x.billed_by = None
            if x.entity_type != "WorkItem":
                sim.client_expenses.setdefault(x.client_key, []).append(x)
                sim.client_candidates[x.client_key] = None
            elif x.entity_key in firm.work_items:
                sim.candidates[x.entity_key] = None
    for wk, amount in inv.fixed_fee_billed.items():
        st = sim.wi_state.get(wk)
        if st is None:
            continue
        st.ff_billed -= amount
        if st.ff_billed <= 0:
            st.progress_billed = False
        for e in st.unbilled:
            if e.billed_by == key:
                e.billed_status, e.billed_by = "Unbilled", None
        if sim.last_invoice_of.get(wk) == key:
            sim.last_invoice_of.pop(wk)
    for d in inv.data:
        if d.entity_type == "Work Item" and d.entity_key in firm.work_items:
            sim.candidates[d.entity_key] = None
    for wk in inv.fixed_fee_billed:
        if wk in firm.work_items:
            sim.candidates[wk] = None


_HANDLERS: dict[str, Callable[[Firm, _Sim, date, str], None]] = {
    "ts_submit": _ts_submit,
    "ts_review": _ts_review,
    "ts_resubmit": _ts_resubmit,
    "approve": _approve,
    "send": _send,
    "pay": _pay,
    "part_pay": lambda f, s, d, k: _pay(f, s, d, k, partial=True),
    "void": _void,
}


# ------------------------------------------------------------------------------------------------
# Client edits, growth and deletions
# ------------------------------------------------------------------------------------------------


def _client_changes(firm: Firm, sim: _Sim, day: date) -> None:
    rng, p = sim.rng, sim.profile
    n_clients = len(firm.contacts) + len(firm.organizations)
    # Ordinary edits.
    edits = _poisson(rng, n_clients * 0.0015)
    for _ in range(edits):
        table: dict[str, Contact] | dict[str, Organization] = (
            firm.organizations if rng.random() < 0.55 else firm.contacts
        )
        key = _sample_key(sim, table, "orgs" if table is firm.organizations else "contacts")
        if key is not None:
            _edit_client(firm, sim, table[key], _stamp(sim, day))
    # Occasionally a bulk update gives many records the same timestamp.
    if rng.random() < 1 / 150:
        stamp = _stamp(sim, day)
        pool: list[Contact | Organization] = [*firm.contacts.values(), *firm.organizations.values()]
        for rec in rng.sample(pool, min(len(pool), rng.randint(5, 25))):
            rec.last_modified = stamp
            _bump(sim, "clients_edited")
    # Growth: new clients.
    if rng.random() < n_clients * p.new_clients_per_year / 365 / 1.6:
        _add_client(firm, sim, _stamp(sim, day), first_start=day + timedelta(days=7))
        _bump(sim, "clients_created")


def _edit_client(firm: Firm, sim: _Sim, rec: Contact | Organization, stamp: datetime) -> None:
    rng = sim.rng
    r = rng.random()
    if r < 0.3:
        rec.phone = _phone(sim)
    elif r < 0.45:
        partners = _staff_by_role(firm, "Partner", "Manager")
        if partners:
            rec.team.manager_key = rng.choice(partners).key
    elif r < 0.5 and rec.contact_type == "Prospect":
        rec.contact_type = "Client"
    elif r < 0.55 and isinstance(rec, Organization):
        rec.full_name = (
            rec.full_name.replace("Pty Ltd", "Ltd")
            if "Pty Ltd" in rec.full_name
            else f"{rec.full_name} Holdings"
        )
    elif r < 0.6:
        rec.address = _address(firm, sim)
    rec.last_modified = stamp
    _bump(sim, "clients_edited")


def _sample_key(
    sim: _Sim, table: dict[str, Contact] | dict[str, Organization], name: str
) -> str | None:
    """A random live key of ``table``, from a cached key list rebuilt when it goes stale."""
    pool = sim.pools.get(name)
    if pool is None or len(pool) != len(table):
        pool = sim.pools[name] = list(table)
    if not pool:
        return None
    key = sim.rng.choice(pool)
    if key not in table:
        pool = sim.pools[name] = list(table)
        return sim.rng.choice(pool) if pool else None
    return key


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    n, p, limit = 0, 1.0, math.exp(-lam)
    while True:
        p *= rng.random()
        if p <= limit:
            return n
        n += 1


def _deletions(firm: Firm, sim: _Sim, day: date) -> None:
    rng = sim.rng
    scale = max(1.0, len(firm.work_items) / 2000)
    stamps: list[datetime] = []  # one deletion time for the day's client deletions
    # A prospect (or an "other" contact) that never had work.
    _delete_client(
        firm, sim, day, 0.02 * scale, firm.contacts, "Contact", ("Prospect", "Other"), stamps
    )
    _delete_client(
        firm, sim, day, 0.01 * scale, firm.organizations, "Organization", ("Prospect",), stamps
    )
    # A planned work item that is no longer needed.
    if rng.random() < 0.03 * scale:
        planned = [wk for when, lst in sim.starting.items() if when > day for wk in lst]
        if planned:
            wk = rng.choice(planned)
            wi = firm.work_items.get(wk)
            if wi is not None and wi.primary_status == "Planned":
                del firm.work_items[wk]
                sim.candidates.pop(wk, None)
                firm.deleted["WorkItem"][wk] = _stamp(sim, day)
                _bump(sim, "work_items_deleted")
    # A time entry logged by mistake, deleted before billing (closed week, still unbilled).
    if rng.random() < 0.05 * scale:
        week = _monday(day) - timedelta(days=7 * rng.randint(1, 3))
        sheets = sim.week_timesheets.get(week)
        if sheets:
            ts = rng.choice(sheets)
            victims = [e for e in ts.entries if e.billed_status == "Unbilled"]
            if victims and ts.key in firm.timesheets:
                e = rng.choice(victims)
                ts.entries.remove(e)
                sim.open_entries.pop((ts.key, e.entity_key, e.task_type_name), None)
                if e.work_item_key and e.work_item_key in firm.work_items:
                    firm.work_items[e.work_item_key].logged_minutes -= e.minutes
                    st = sim.wi_state[e.work_item_key]
                    if e in st.unbilled:
                        st.unbilled.remove(e)
                elif e.client_key in sim.client_unbilled and e in sim.client_unbilled[e.client_key]:
                    sim.client_unbilled[e.client_key].remove(e)
                firm.deleted["TimeEntry"][e.key] = _stamp(sim, day)
                _bump(sim, "time_entries_deleted")
                if not ts.entries:
                    del firm.timesheets[ts.key]
                    firm.deleted["Timesheet"][ts.key] = _stamp(sim, day)


def _delete_client(
    firm: Firm,
    sim: _Sim,
    day: date,
    chance: float,
    table: dict[str, Contact] | dict[str, Organization],
    kind: str,
    types: tuple[str, ...],
    stamps: list[datetime],
) -> None:
    if sim.rng.random() >= chance:
        return
    pool = [k for k, rec in table.items() if rec.contact_type in types]
    if not pool:
        return
    key = sim.rng.choice(pool)
    if _has_activity(firm, sim, key):
        return
    if not stamps:
        stamps.append(_stamp(sim, day))
    del table[key]
    firm.deleted[kind][key] = stamps[0]
    _bump(sim, "contacts_deleted" if kind == "Contact" else "organizations_deleted")


def _has_activity(firm: Firm, sim: _Sim, client_key: str) -> bool:
    return client_key in sim.active_clients or client_key in sim.group_of
