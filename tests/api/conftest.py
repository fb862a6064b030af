"""The PostgreSQL fixtures of the store tests, for the record lookups of the HTTP API."""

from tests.stores.conftest import pg, pg_cluster

__all__ = ["pg", "pg_cluster"]
