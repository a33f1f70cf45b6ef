"""Every ORM model, imported once so that `Base.metadata` knows the whole schema.

Alembic, the Prisma exporter and the tests read the schema from here.
"""

from mobility.core.db import Base

metadata = Base.metadata

__all__ = [name for name in dir() if not name.startswith("_")]
