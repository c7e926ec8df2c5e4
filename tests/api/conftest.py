from tests.reports.conftest import (  # noqa: F401 - fixtures
    job_context,
    karbon_url,
    sandbox,
    sync_settings,
    synced_firm,
)
