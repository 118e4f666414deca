"""Real daphne and uvicorn processes for the tests, on free loopback ports.

Each server runs ``testproject.asgi:application`` with ``tests.server_settings``
on a SQLite file that the test session migrated; data is made through the
demo's management commands, as a user would.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVER_KINDS = ("daphne", "uvicorn")


IN_CI = os.environ.get("CI") == "true"


def require_program(name: str) -> str:
    """The path of a system program; in CI a missing one fails, elsewhere it skips."""
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} is not installed; .ci/run must install it")
        pytest.skip(f"{name} is not installed")
    return path


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 30) -> None:
    """Return once ``process`` accepts TCP connections on ``port``; raise if it dies or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout:.0f} s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(db_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(
        DJANGO_SETTINGS_MODULE="tests.server_settings",
        DJANGO_DB_PATH=str(db_path),
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    env.pop("REDIS_URL", None)
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``testproject/manage.py`` as a user would."""
    return subprocess.run(
        [sys.executable, str(ROOT / "testproject" / "manage.py"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
    )



def shell(env: dict[str, str], code: str) -> str:
    """Run ``code`` in ``manage.py shell`` (another process of the project); its last line of output."""
    output = manage(env, "shell", "-c", code).stdout.strip()
    return output.splitlines()[-1] if output else ""

@dataclass
class Server:
    kind: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(repr=False)

    def ws(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def http(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def each_server(servers_name: str, server_name: str, *, scope: str = "module", **start: Any) -> tuple[Any, Any]:
    """The one factory of per-server fixtures: ``servers_name`` and ``server_name``.

    ``servers_name`` starts daphne and uvicorn (``start_server(kind, ...,
    **start)``) once per ``scope`` and stops them after; ``server_name`` hands
    a test one of them, so the test runs once per server. In a test module or
    conftest::

        quirks_servers, quirks = each_server("quirks_servers", "quirks", app="tests.support.quirks_asgi:application")
    """

    @pytest.fixture(scope=scope, name=servers_name)  # type: ignore[call-overload]
    def servers(server_env_base: dict[str, str], server_logs: Path) -> Iterator[dict[str, Server]]:
        started: dict[str, Server] = {}
        try:
            for kind in SERVER_KINDS:
                started[kind] = start_server(kind, server_env_base, server_logs, **start)
            yield started
        finally:
            for server in started.values():
                server.stop()

    @pytest.fixture(params=SERVER_KINDS, name=server_name)
    def one(request: pytest.FixtureRequest) -> Server:
        found: Server = request.getfixturevalue(servers_name)[request.param]
        assert found.alive(), f"{found.kind} died:\n{found.log()}"
        return found

    return servers, one


def start_server(
    kind: str,
    env: dict[str, str],
    log_dir: Path,
    *,
    settings: dict[str, Any] | None = None,
    app: str = "testproject.asgi:application",
) -> Server:
    port = free_port()
    if settings:
        env = {**env, "BEARER_TEST_SETTINGS": json.dumps(settings)}
    if kind == "daphne":
        command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), app]
    elif kind == "uvicorn":
        command = [
            sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "debug", app,
        ]  # fmt: skip
    else:
        raise ValueError(kind)
    log_path = log_dir / f"{kind}-{port}.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    server = Server(kind, port, process, log_path, env)
    try:
        wait_for_port(port, process, kind)
    except RuntimeError as exc:
        server.stop()
        raise RuntimeError(f"{exc}:\n{server.log()}") from None
    return server


class Revoker:
    """A third process that runs Python statements in the project when told to."""

    SCRIPT = (
        "import json, sys, time\n"
        "from django.db import transaction\n"
        "from django.contrib.auth.models import User\n"
        "from rest_framework.authtoken.models import Token\n"
        "print('ready', flush=True)\n"
        "while True:\n"
        "    line = sys.stdin.readline()\n"
        "    if not line:\n"
        "        break\n"
        "    started = time.time()\n"
        "    exec(json.loads(line))\n"
        "    print('done', started, time.time(), flush=True)\n"
    )

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "testproject" / "manage.py"), "shell", "-c", self.SCRIPT],
            env=env,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.expect("ready")

    def send(self, code: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(code) + "\n")
        self.process.stdin.flush()

    def expect(self, marker: str) -> str:
        """Read up to a line that starts with ``marker``; the rest of that line."""
        assert self.process.stdout is not None
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"the revoking process exited before printing {marker!r}")
            word, _, rest = line.strip().partition(" ")
            if word == marker:
                return rest

    def done(self) -> float:
        """Wait until the statement sent last has finished; when it started (``time.time()``)."""
        return float(self.expect("done").split()[0])

    def run(self, code: str) -> float:
        """Run ``code``; return when it started (``time.time()`` in that process) once it has finished."""
        self.send(code)
        return self.done()

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


@contextlib.contextmanager
def revoker(env: dict[str, str]) -> Iterator[Revoker]:
    process = Revoker(env)
    try:
        yield process
    finally:
        process.close()


class RedisProcess:
    """A redis-server of the tests' own on a free loopback port; can be stopped and restarted."""

    def __init__(self, workdir: Path) -> None:
        self.program = require_program("redis-server")
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.program, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(self.port, self.process, "redis-server", timeout=15)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def postgres_bindir() -> str:
    """The directory of Debian's versioned PostgreSQL server programs (initdb, pg_ctl).

    Debian keeps them off ``PATH`` (``/usr/lib/postgresql/<version>/bin``).
    """
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(os.path.realpath(found))
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not candidates:
        if IN_CI:
            pytest.fail("PostgreSQL (initdb) is not installed; .ci/run must install postgresql")
        pytest.skip("PostgreSQL (initdb) is not installed")
    return os.path.dirname(candidates[-1])


class PostgresProcess:
    """A throwaway PostgreSQL cluster of the tests' own, on a free port and a Unix socket.

    initdb refuses to run as root, so as root the cluster belongs to the
    ``postgres`` user that Debian's package creates, in a directory of its own
    outside pytest's (root-only) temporary directories.
    """

    def __init__(self, *, options: str = "", cores: str | None = None) -> None:
        #: more ``-c name=value`` server options (the bench adds log_connections)
        self.options = options
        #: a taskset CPU list the server runs on (the bench pins it beside daphne)
        self.cores = cores
        self.bindir = postgres_bindir()
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="channels-bearer-pg-"))
        self.datadir = self.workdir / "data"
        self.socket_dir = self.workdir
        self.user = "postgres"
        self._as_owner: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres", "postgres")
            self._as_owner = ["runuser", "-u", "postgres", "--"]
        else:
            import getpass

            self.user = getpass.getuser()

    def _run(self, *command: str) -> None:
        # The program is the first word not an option of a wrapper (taskset -c LIST).
        at = 3 if command[0] == "taskset" else 0
        program = [*command[:at], os.path.join(self.bindir, command[at]), *command[at + 1 :]]
        subprocess.run(
            [*self._as_owner, *program],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
        )

    def start(self) -> None:
        if not self.datadir.exists():
            self._run("initdb", "-D", str(self.datadir), "-U", self.user, "--auth=trust", "-E", "UTF8", "--no-sync")
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 " + self.options
        )
        # pg_ctl forks the postmaster, which forks every backend: all inherit the pinning.
        pinned = ["taskset", "-c", self.cores] if self.cores else []
        self._run(*pinned, "pg_ctl", "-D", str(self.datadir), "-o", options, "-l", str(self.workdir / "log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        if (self.datadir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        """Stop (fast: every connection is dropped) and start again; back when this returns."""
        self.stop()
        self.start()

    @property
    def log(self) -> Path:
        """The server's log (with ``log_connections``, one "connection authorized" line per session)."""
        return self.workdir / "log"

    def admin(self, database: str) -> Any:
        """A psycopg connection to ``database``, in autocommit: for counting sessions and backends."""
        import psycopg

        return psycopg.connect(
            host=str(self.socket_dir), port=self.port, user=self.user, dbname=database, autocommit=True
        )

    def cleanup(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.workdir, ignore_errors=True)

    def create_database(self, name: str) -> None:
        self._run("createdb", "-h", str(self.socket_dir), "-p", str(self.port), "-U", self.user, name)

    def env(self, name: str) -> dict[str, str]:
        """What ``tests.server_settings`` reads to use database ``name`` of this cluster."""
        return {
            "BEARER_TEST_PG_HOST": str(self.socket_dir),
            "BEARER_TEST_PG_PORT": str(self.port),
            "BEARER_TEST_PG_USER": self.user,
            "BEARER_TEST_PG_NAME": name,
        }
