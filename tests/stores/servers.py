"""Real Redis and PostgreSQL servers for tests, on 127.0.0.1, in temporary directories.

Plain helpers, so any test folder can use them::

    with redis_server() as redis:          # redis.url
        ...
        redis.stop(); redis.start()        # same port, for outage tests
    with postgres_server() as pg:          # pg.dsn, pg.create_database(name) -> dsn
        ...

Both servers can be stopped and started again on the same port and data directory
(outage tests), and paused with SIGSTOP (a server that accepts connections and never
answers: the "hung database" case). When the binaries are missing, the ``*_problem()``
functions say why, for ``pytest.skip``.

PostgreSQL refuses to run as root. As root, the data directory is created under the
system temp dir, handed to the ``postgres`` user that the Debian package creates, and
the server is started with ``subprocess.Popen(user=..., group=...)``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import psutil  # type: ignore[import-untyped, unused-ignore]

HOST = "127.0.0.1"
#: A cold start on a loaded 2-core machine; PostgreSQL's first start replays nothing.
START_TIMEOUT_S = 30.0
#: A clean shutdown (SIGTERM for Redis, SIGINT "fast" for PostgreSQL) before SIGKILL.
STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    """A TCP port nobody listens on at 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def find_binary(name: str) -> str | None:
    """``name`` on PATH, else in the newest ``/usr/lib/postgresql/<version>/bin``."""
    found = shutil.which(name)
    if found:
        return found
    def version(path: str) -> int:  # /usr/lib/postgresql/<version>/bin/<name>
        major = Path(path).parent.parent.name
        return int(major) if major.isdigit() else 0

    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=version)
    return candidates[-1] if candidates else None


def redis_problem() -> str | None:
    """Why a Redis server cannot be started here, or None."""
    if find_binary("redis-server") is None:
        return "redis-server not found (Debian package redis-server; scripts/setup.sh installs it)"
    return None


def postgres_problem() -> str | None:
    """Why a PostgreSQL server cannot be started here, or None."""
    for name in ("initdb", "postgres", "pg_isready"):
        if find_binary(name) is None:
            return f"{name} not found (Debian package postgresql; scripts/setup.sh installs it)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run PostgreSQL as"
    return None


class _Process:
    """A server process with a log file, stopped by a signal then SIGKILL."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def _spawn(self, args: list[str], **kwargs: Any) -> None:
        self._log = open(self.workdir / "server.log", "ab")  # noqa: SIM115 (closed in stop)
        # A session of its own: a Ctrl-C at the terminal goes to pytest, not to the server.
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True, **kwargs,
        )

    def _halt(self, sig: signal.Signals) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            self._signal_tree(proc.pid, signal.SIGCONT)  # a paused server cannot shut down
            proc.send_signal(sig)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pause(self) -> None:
        """SIGSTOP the server and its children: the kernel still accepts connections and
        takes requests, nothing ever answers."""
        assert self.proc is not None
        self._signal_tree(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self._signal_tree(self.proc.pid, signal.SIGCONT)

    @staticmethod
    def _signal_tree(pid: int, sig: signal.Signals) -> None:
        # PostgreSQL serves each connection from a child that calls setsid(), so a process
        # group signal would miss them: signal the server and each of its descendants.
        try:
            root = psutil.Process(pid)
            for proc in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.send_signal(sig)
        except psutil.NoSuchProcess:
            pass

    def log_tail(self, n: int = 4000) -> str:
        try:
            return (self.workdir / "server.log").read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def _wait(self, ready: Any, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{what} exited at start:\n{self.log_tail()}")
            if ready():
                return
            time.sleep(0.05)
        raise RuntimeError(f"{what} not ready after {START_TIMEOUT_S} s:\n{self.log_tail()}")


class RedisServer(_Process):
    """``redis-server`` without persistence on a fixed port of 127.0.0.1."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        super().__init__(workdir)
        self.port = port or free_port()
        self.url = f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        binary = find_binary("redis-server")
        assert binary is not None, redis_problem()
        self._spawn([
            binary, "--port", str(self.port), "--bind", HOST, "--save", "",
            "--appendonly", "no", "--dir", str(self.workdir), "--daemonize", "no",
        ])
        self._wait(self._pong, "redis-server")

    def _pong(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        self._halt(signal.SIGTERM)


class PostgresServer(_Process):
    """A throwaway PostgreSQL cluster (trust auth, fsync off) on a fixed port."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        super().__init__(workdir)
        self.port = port or free_port()
        self.data = workdir / "data"
        self.user = "postgres"
        self.dsn = self.dsn_for("postgres")
        self._as_user: dict[str, Any] = {}
        if os.geteuid() == 0:
            self._as_user = {"user": "postgres", "group": "postgres", "extra_groups": []}

    def dsn_for(self, database: str) -> str:
        return f"postgresql://{self.user}@{HOST}:{self.port}/{database}"

    def init(self) -> None:
        """initdb the data directory (once)."""
        initdb = find_binary("initdb")
        assert initdb is not None, postgres_problem()
        subprocess.run(
            [initdb, "-D", str(self.data), "-U", self.user, "--auth=trust", "--no-sync",
             "-E", "UTF8", "--locale=C"],
            check=True, stdin=subprocess.DEVNULL, capture_output=True, **self._as_user,
        )

    def start(self) -> None:
        postgres = find_binary("postgres")
        assert postgres is not None, postgres_problem()
        self._spawn(
            [postgres, "-D", str(self.data), "-k", str(self.workdir), "-h", HOST,
             "-p", str(self.port), "-F", "-c", "full_page_writes=off",
             "-c", "synchronous_commit=off", "-c", "max_connections=50"],
            **self._as_user,
        )
        self._wait(self._accepting, "postgres")

    def _accepting(self) -> bool:
        isready = find_binary("pg_isready")
        assert isready is not None
        done = subprocess.run(
            [isready, "-q", "-h", HOST, "-p", str(self.port), "-U", self.user],
            stdin=subprocess.DEVNULL, capture_output=True,
        )
        return done.returncode == 0

    def stop(self) -> None:
        """Fast shutdown (SIGINT): open connections are closed, then the server exits."""
        self._halt(signal.SIGINT)

    def create_database(self, name: str) -> str:
        """Create database ``name`` and return its DSN."""
        createdb = find_binary("createdb")
        assert createdb is not None
        subprocess.run(
            [createdb, "-h", HOST, "-p", str(self.port), "-U", self.user, name],
            check=True, stdin=subprocess.DEVNULL, capture_output=True,
        )
        return self.dsn_for(name)


@contextlib.contextmanager
def _workdir(prefix: str, owner: str | None) -> Iterator[Path]:
    # Not pytest's tmp_path: as root its parents are 0700 and the postgres user could not
    # reach the data directory. The system temp dir is world-traversable.
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        if owner is not None:
            entry = pwd.getpwnam(owner)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    """A running Redis on a free port; stopped and removed on exit."""
    with _workdir("trunkline-redis-", None) as workdir:
        server = RedisServer(workdir)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A running PostgreSQL on a free port; ``.dsn`` reaches database ``postgres``."""
    owner = "postgres" if os.geteuid() == 0 else None
    with _workdir("trunkline-pg-", owner) as workdir:
        server = PostgresServer(workdir)
        server.init()
        server.start()
        try:
            yield server
        finally:
            server.stop()
