"""What the store raises that callers above it handle by name, without importing the driver."""

from sqlalchemy.exc import IntegrityError

# A unique or foreign key said no: another writer committed the same key first (a replica
# race), or the row it refers to is gone. Work that reads before it writes runs again.
Conflict = IntegrityError

__all__ = ["Conflict"]
