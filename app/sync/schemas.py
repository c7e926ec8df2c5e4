"""What the sync endpoints answer."""

from datetime import date as date_type
from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from app.models import SyncKind, SyncState, SyncTrigger


class StreamProgressView(BaseModel):
    name: str = Field(
        description="users, contacts, organizations, work_items, timesheets or invoices"
    )
    state: Literal["pending", "running", "listed", "done"] = Field(
        description="`pending`: no page read yet; `running`: reading its lists; `listed`: its "
        "lists are in (every record stored from its list JSON) and detail calls are still owed; "
        "`done`: this run reads nothing more of it"
    )
    pages_done: int
    pages_total: int | None = Field(
        description="Estimated from the records Karbon says are left and the records its "
        "pages have held; null (unknown) when Karbon gives no count or the stream reads "
        "several filtered lists"
    )
    records_total: int | None = Field(
        description="Records Karbon lists for the stream (`@odata.count`); null when unknown"
    )
    records: int
    detail_calls: int
    details_pending: int = Field(
        description="Detail calls queued for the stream and not yet read (the sync reads every "
        "list first, then these by what the reports need first)"
    )
    requests: int


class SyncErrorView(BaseModel):
    code: str | None
    message: str | None


class SyncRunView(BaseModel):
    id: UUID
    kind: SyncKind
    trigger: SyncTrigger
    state: SyncState
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    requests_made: int
    request_rate: float = Field(description="Requests per second to Karbon over the last minute")
    eta_seconds: float | None = Field(description="Estimated seconds left; none when unknown")
    streams: list[StreamProgressView]
    error: SyncErrorView | None


class SyncStatus(BaseModel):
    current: SyncRunView | None = Field(description="The queued or running sync, if any")
    last: SyncRunView | None = Field(description="The last finished sync, if any")
    next_incremental_at: datetime | None
    next_reconciliation_at: datetime | None


class SyncRequestBody(BaseModel):
    kind: Literal["incremental", "full"] = Field(
        default="incremental",
        description="`incremental` reads what changed; `full` re-reads every list in full and "
        "marks what Karbon no longer returns as deleted (details are read when owed: new or "
        "changed records)",
    )


class SyncRequested(BaseModel):
    joined: bool = Field(description="True when a sync was already under way and this joined it")
    run: SyncRunView


class SyncSettingsView(BaseModel):
    incremental_interval_minutes: int
    nightly_reconciliation: bool


class SyncSettingsPatch(BaseModel):
    incremental_interval_minutes: int | None = Field(
        default=None, ge=15, le=1440, description="Minutes between incremental syncs (15 to 1440)"
    )
    nightly_reconciliation: bool | None = None


class RotationView(BaseModel):
    """The share of held details a firm's latest full run queued for re-checking."""

    night: date_type = Field(description="UTC date of the full run that queued this share")
    period_nights: int = Field(
        description="Nights in which every detail held is re-checked once (1 to 7): the fewest "
        "whose nightly share and a read of every list fit the night"
    )
    bucket: int = Field(description="Which share of the rotation that night re-checks")
    share: int = Field(description="Details that night re-checks")
    detail_records: int = Field(description="Records held with their detail: the whole round")
    list_pages: int = Field(
        description="Pages of a read of every list, estimated from the records held"
    )
    planned_requests: int = Field(description="`list_pages` plus `share`")
    night_requests: int = Field(
        description="What the firm's request budget sends from 01:00 to 05:00 UTC (25,920 at "
        "1.8 requests/second)"
    )
    fits_the_night: bool = Field(
        description="False: even a seven-night rotation does not fit; the re-checks the night "
        "leaves stay queued for later runs"
    )


class NightlyRunView(BaseModel):
    """A firm's last finished full reconciliation, against the night."""

    run_id: UUID
    state: SyncState
    started_at: datetime | None
    finished_at: datetime | None
    requests_made: int
    night_requests: int | None = Field(
        description="What the night holds (see `rotation`); none for a run without a rotation"
    )


class TenantSyncView(BaseModel):
    tenant_id: UUID
    tenant_name: str
    connected: bool
    current: SyncRunView | None
    last: SyncRunView | None
    last_error_code: str | None
    last_error_at: datetime | None
    next_incremental_at: datetime | None = Field(
        description="None while the firm may not sync or has not finished its first sync"
    )
    next_nightly_at: datetime | None = Field(
        description="The firm's own minute between 01:00 and 05:00 UTC; none when its nightly "
        "reconciliation is off or it may not sync"
    )
    rotation: RotationView | None = Field(description="None until a full run has queued a share")
    rechecks_queued: int = Field(
        description="Re-checks of held details still waiting; each run takes them only until "
        "its next incremental is near"
    )
    last_nightly: NightlyRunView | None


class ClientRef(BaseModel):
    key: str
    name: str | None = Field(description="None until a report refresh has named the client")


class DataQualityIssueView(BaseModel):
    """Something Karbon sent that Reckonry could not read."""

    entity: str = Field(description="Karbon's entity: TimeEntry, InvoiceLine, WorkItem, Invoice…")
    key: str = Field(description="The Karbon key of the entry, line or record")
    record_key: str = Field(description="The list record it came in (its timesheet or invoice)")
    field: str = Field(description="Karbon's field name (a path for nested fields)")
    value: str | None = Field(description="What Karbon sent, as text; none for a null")
    reason: str
    set_aside: Literal["field", "record"] = Field(
        description="`field`: the record is kept and only this field is treated as unknown. "
        "`record`: the entry, line or record could not be read and is in no figure"
    )
    clients: list[ClientRef] = Field(
        description="The clients it concerns, as the record says, named as of the last refresh"
    )
    date: date_type | None = Field(description="The entry's or invoice's date, when it has one")
    first_seen_at: datetime
    last_seen_at: datetime
