"""Fixtures of the store tests: real Redis and PostgreSQL servers, skipped only if absent.

One PostgreSQL cluster serves the whole session (initdb costs a second or two); each test
gets a database of its own. Outage tests stop and restart the cluster; the fixture
starts it again if a failed test left it down.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from .servers import (
    PostgresServer,
    postgres_problem,
    postgres_server,
)

_db_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresServer]:
    problem = postgres_problem()
    if problem:
        pytest.skip(problem)
    with postgres_server() as server:
        yield server


@pytest.fixture
def pg(pg_cluster: PostgresServer) -> Iterator[tuple[PostgresServer, str]]:
    """The shared cluster and the DSN of a database created for this test."""
    if not pg_cluster.running:
        pg_cluster.start()
    dsn = pg_cluster.create_database(f"test_{next(_db_numbers)}")
    yield pg_cluster, dsn
    if pg_cluster.running:
        pg_cluster.resume()  # in case a test paused it and failed
    else:
        pg_cluster.start()
