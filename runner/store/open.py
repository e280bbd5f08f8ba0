"""``open_store(url_or_dir)``: the store a ``--database``/``--state-dir`` value names."""

from __future__ import annotations

from smrun.store import Store

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def open_store(url_or_dir: str) -> Store:
    """A PostgreSQL URL (``postgresql://...`` or ``postgres://...``) is a
    :class:`~smrun.store.postgres.PostgresStore`; anything else is a state
    directory, whose ``journal.sqlite`` is a
    :class:`~smrun.store.sqlite.SqliteStore`. Not open yet: ``await store.open()``.

    Error handling: a PostgreSQL URL without asyncpg installed raises
    ImportError naming the extra to install."""
    if url_or_dir.lower().startswith(POSTGRES_SCHEMES):
        try:
            from smrun.store.postgres import PostgresStore
        except ImportError as error:  # asyncpg is the optional extra smrun[postgres]
            raise ImportError(
                f"a PostgreSQL store needs asyncpg: pip install 'smrun[postgres]' ({error})"
            ) from error
        return PostgresStore(url_or_dir)
    from smrun.store.sqlite import SqliteStore

    return SqliteStore.in_dir(url_or_dir)
