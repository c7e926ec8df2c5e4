"""ORM models. Importing this package registers every table on `Base.metadata`."""

from app.models.base import Base
from app.models.karbon_connection import KarbonConnection
from app.models.tenancy import ApiKey, Role, Tenant, User

__all__ = ["ApiKey", "Base", "KarbonConnection", "Role", "Tenant", "User"]
