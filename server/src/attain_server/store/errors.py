"""What the store raises that callers above it handle by name, without importing the driver."""

from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, SQLAlchemyError

# A unique or foreign key said no: another writer committed the same key first (a replica
# race), or the row it refers to is gone. Work that reads before it writes runs again.
Conflict = IntegrityError

# Anything the database or its driver raised: trouble of the database, not of the data.
DatabaseError = SQLAlchemyError


def connection_lost(exc: BaseException) -> bool:
    """Whether `exc` says the connection to the database was lost (nothing wrong with the
    work itself: it may be done again once the database answers)."""
    if isinstance(exc, DisconnectionError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


__all__ = ["Conflict", "DatabaseError", "connection_lost"]
