"""ORM models. Importing this package registers every table on `Base.metadata`."""

from app.models.base import Base
from app.models.tenancy import Role, Tenant, User

__all__ = ["Base", "Role", "Tenant", "User"]
