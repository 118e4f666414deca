#!/usr/bin/env python3
"""channels-bearer's benchmark: ``python3 dev.py bench [--quick]`` (see bench/README.md).

Real daphne processes, one per configuration, pinned to core 0 with
``taskset -c 0``; this process (the load client) pinned to core 1. Measures:

1. handshake throughput and p50/p99 latency (connect → 101 → first frame →
   close handshake) with concurrent clients (a user each), rounds interleaved
   across configurations so that machine drift cancels, on SQLite and on a
   throwaway PostgreSQL cluster (also pinned to core 0) at CONN_MAX_AGE 0,
   persistent, and with Django's pool; SQL statements per handshake counted
   inside each server, new database connections per handshake counted by
   PostgreSQL (its log, log_connections) or, on SQLite, by Django;
2. a reconnect storm: many sockets of few tokens opened at once, and the
   database lookups they cost;
3. the in-process cost per connect of the middleware against the floor (the
   backend's own validation plus the user fetch, in one database hop);
4. RSS per idle connection with N open sockets;
5. revocation fan-out: ``adisconnect_user()`` to the last of N sockets closed,
   over two daphne processes on channels-redis.

Prints the results as markdown (and writes them to bench/results/latest.md),
then every target with PASS/FAIL. Failures are counted and printed, never
dropped. The exit status is 0 whenever the run completed: targets are reported,
not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
#: Committed copies of a full run, which docs/performance.md includes (--publish).
PUBLISHED = BENCH / "published"
SERVER_CORE = 0
CLIENT_CORE = 1
PYTHONPATH = os.pathsep.join([str(ROOT), str(BENCH)])

DRF = "channels_bearer.backends.DRFTokenBackend"
SIMPLEJWT = "channels_bearer.backends.SimpleJWTBackend"
JWKS = "channels_bearer.backends.JWKSBackend"
USER = "bench"
#: CACHE_TTL of the cached configuration: longer than a run, so the rows show
#: the steady state (a hit); a refill costs 2 queries per token per CACHE_TTL.
CACHED_TTL = 3600
REVOKEE = "revokee"
#: The listen backlog of the storm's servers: with daphne's default (50) the
#: kernel drops most of a thousand simultaneous SYNs, and the clients try again
#: a second later, after the lookups they could have shared are done.
STORM_BACKLOG = 2048


@dataclass(frozen=True)
class Params:
    rounds: int
    seconds: float
    concurrency: int
    idle_sockets: int
    revoke_sockets: int
    inproc_calls: int
    inproc_batches: int


    storm_users: int
    storm_sockets_per_user: int


FULL = Params(
    rounds=4, seconds=3.0, concurrency=20, idle_sockets=1000, revoke_sockets=1000, inproc_calls=400, inproc_batches=7,
    storm_users=100, storm_sockets_per_user=10,
)  # fmt: skip
QUICK = Params(
    rounds=1, seconds=0.4, concurrency=20, idle_sockets=100, revoke_sockets=200, inproc_calls=50, inproc_batches=3,
    storm_users=20, storm_sockets_per_user=10,
)  # fmt: skip


# --- a minimal WebSocket client ---------------------------------------------
# Hand-written on asyncio streams: a handshake costs the client a small
# fraction of what it costs the server, so the server is what is measured.


class HandshakeFailed(Exception):
    """One failed handshake; the message is its failure class (no token text)."""


def request_bytes(port: int, headers: list[tuple[str, str]]) -> bytes:
    lines = [
        "GET /ws/ HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version: 13",
        f"Origin: http://127.0.0.1:{port}",
        *(f"{name}: {value}" for name, value in headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def masked_frame(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body


CLOSE_1000 = 0x8, struct.pack("!H", 1000)


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readexactly(2)
    opcode, length = head[0] & 0x0F, head[1] & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    return opcode, await reader.readexactly(length)


@dataclass
class Client:
    """How one configuration's client connects: headers to send, what to expect back."""

    port: int
    headers: list[tuple[str, str]]
    user: str
    subprotocol: str | None = None

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connect, upgrade, read the first frame; raises HandshakeFailed."""
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError as exc:
            raise HandshakeFailed(f"connect: {type(exc).__name__}") from None
        try:
            writer.write(request_bytes(self.port, self.headers))
            head = await reader.readuntil(b"\r\n\r\n")
            status = head.split(b"\r\n", 1)[0]
            if not status.startswith(b"HTTP/1.1 101"):
                raise HandshakeFailed(f"HTTP {status[9:12].decode('latin-1', 'replace')}")
            if self.subprotocol is not None and f"sec-websocket-protocol: {self.subprotocol}\r\n".encode() not in head.lower():
                raise HandshakeFailed("subprotocol not answered")
            opcode, payload = await read_frame(reader)
            if opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                raise HandshakeFailed(f"closed {code}")
            if payload.decode("utf-8", "replace") != self.user:
                raise HandshakeFailed("wrong user")
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError) as exc:
            writer.close()
            raise HandshakeFailed(f"dropped: {type(exc).__name__}") from None
        except BaseException:
            writer.close()
            raise
        return reader, writer

    async def handshake(self) -> None:
        """One full cycle: open, then the close handshake."""
        reader, writer = await self.open()
        try:
            writer.write(masked_frame(*CLOSE_1000))
            while True:
                opcode, _ = await read_frame(reader)
                if opcode == 0x8:
                    break
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise HandshakeFailed(f"close: {type(exc).__name__}") from None
        finally:
            writer.close()


async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, closed: dict[str, Any]) -> None:
    """Keep an idle socket open (answering pings) until the server closes it."""
    try:
        while True:
            opcode, payload = await read_frame(reader)
            if opcode == 0x9:
                writer.write(masked_frame(0xA, payload))
            elif opcode == 0x8:
                closed["at"] = time.perf_counter()
                closed["code"] = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                with contextlib.suppress(Exception):
                    writer.write(masked_frame(0x8, payload[:2]))
                return
    except (asyncio.IncompleteReadError, ConnectionError):
        closed["at"] = time.perf_counter()
        closed["code"] = "dropped"
    finally:
        writer.close()


@dataclass
class LoadResult:
    ok: int = 0
    elapsed: float = 0.0
    queries: int = 0
    #: new database connections (PostgreSQL: sessions it accepted; SQLite: Django's connection_created)
    connections: int = 0
    latencies: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    #: handshakes/s of each round
    rates: list[float] = field(default_factory=list)

    def add(self, other: LoadResult) -> None:
        self.ok += other.ok
        self.elapsed += other.elapsed
        self.rates.append(other.ok / other.elapsed if other.elapsed else 0.0)
        self.queries += other.queries
        self.connections += other.connections
        self.latencies.extend(other.latencies)
        self.failures.update(other.failures)

    @property
    def rate(self) -> float:
        # The median round: a burst of other work on the machine spoils one
        # round of one row, not the row.
        return statistics.median(self.rates) if self.rates else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


async def load(clients: list[Client], seconds: float, concurrency: int) -> LoadResult:
    """``concurrency`` workers, worker ``i`` handshaking as ``clients[i % len(clients)]``, for ``seconds``."""
    result = LoadResult()
    deadline = time.perf_counter() + seconds

    async def worker(client: Client) -> None:
        # At least one handshake each, then until the deadline: on a loaded
        # machine the workers may first run after a short round's deadline has
        # passed, and a round of nothing would say nothing about the row.
        while True:
            started = time.perf_counter()
            try:
                async with asyncio.timeout(10):
                    await client.handshake()
            except HandshakeFailed as exc:
                result.failures[str(exc)] += 1
            except TimeoutError:
                result.failures["timeout (10 s)"] += 1
            else:
                result.ok += 1
                result.latencies.append(time.perf_counter() - started)
            if time.perf_counter() >= deadline:
                return

    started = time.perf_counter()
    await asyncio.gather(*(worker(clients[i % len(clients)]) for i in range(concurrency)))
    result.elapsed = time.perf_counter() - started
    return result


async def open_many(clients: list[Client], concurrency: int, timeout: float = 20) -> tuple[list[tuple[Any, Any]], Counter[str]]:
    """Open one socket per client, ``concurrency`` at a time; failures counted."""
    opened: list[tuple[Any, Any]] = []
    failures: Counter[str] = Counter()
    gate = asyncio.Semaphore(concurrency)

    async def one(client: Client) -> None:
        async with gate:
            try:
                async with asyncio.timeout(timeout):
                    opened.append(await client.open())
            except HandshakeFailed as exc:
                failures[str(exc)] += 1
            except TimeoutError:
                failures[f"timeout ({timeout:g} s)"] += 1

    await asyncio.gather(*(one(c) for c in clients))
    return opened, failures


# --- servers ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stats(self) -> dict[str, int]:
        """The server's own counts so far: SQL ``queries`` and database ``connections`` opened."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(f"GET /bench/stats HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        return {k: int(v) for k, v in json.loads(data.split(b"\r\n\r\n", 1)[1]).items()}

    def queries(self) -> int:
        return self.stats()["queries"]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_servers(specs: dict[str, dict[str, Any]], env: dict[str, str], logs: Path) -> dict[str, Server]:
    """Start one daphne per spec, all at once (they share core 0), and wait for each to listen."""
    servers: dict[str, Server] = {}
    try:
        for name, spec in specs.items():
            port = free_port()
            server_env = {**env, "BENCH_CONFIG": json.dumps(spec)}
            if spec.get("redis"):
                server_env["REDIS_URL"] = spec["redis"]
            log = logs / f"daphne-{name}-{port}.log"
            # daphne listens with Twisted's default backlog of 50 unless told
            # otherwise (spec "backlog": its endpoint string says it).
            listen = (
                ["-e", f"tcp:port={port}:interface=127.0.0.1:backlog={spec['backlog']}"]
                if spec.get("backlog")
                else ["-b", "127.0.0.1", "-p", str(port)]
            )
            command = [
                "taskset", "-c", str(SERVER_CORE),
                sys.executable, "-m", "daphne", *listen, "benchproject.asgi:application",
            ]  # fmt: skip
            process = subprocess.Popen(command, cwd=ROOT, env=server_env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
            servers[name] = Server(name, port, process, log)
        deadline = time.monotonic() + 120
        for server in servers.values():
            while True:
                if server.process.poll() is not None:
                    raise RuntimeError(f"daphne {server.name} exited:\n{server.log.read_text(errors='replace')[-3000:]}")
                try:
                    server.queries()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"daphne {server.name} did not answer within 120 s") from None
                    time.sleep(0.1)
    except BaseException:
        for server in servers.values():
            server.stop()
        raise
    return servers


# --- the authorization server for JWKSBackend ----------------------------------
# The test suite's (tests/support/jwks.py): a JWKS of the fixed test keys,
# served over loopback by a thread of this process.


def jwks_server() -> Any:
    from tests.support.jwks import JWKSServer

    return JWKSServer()


def jwks_token(server: Any, sub: str) -> str:
    # Valid for the whole run (the suite's default is five minutes).
    return str(server.mint(sub, exp=int(time.time()) + 7200))


# --- the run --------------------------------------------------------------------


@dataclass(frozen=True)
class Mode:
    """A database the handshake table is measured on (BENCH_CONFIG["db"] without its address)."""

    key: str
    title: str
    db: dict[str, Any]

    @property
    def postgresql(self) -> bool:
        return self.db["engine"] == "postgresql"


MODES = [
    Mode("sqlite", "SQLite, Django's defaults (CONN_MAX_AGE = 0)", {"engine": "sqlite"}),
    Mode("pg", "PostgreSQL, Django's defaults (CONN_MAX_AGE = 0)", {"engine": "postgresql", "conn_max_age": 0}),
    Mode("pg-persistent", "PostgreSQL, persistent connections (CONN_MAX_AGE = None)", {"engine": "postgresql", "conn_max_age": None}),
    Mode("pg-pool", 'PostgreSQL, Django\'s psycopg pool (OPTIONS = {"pool": True})', {"engine": "postgresql", "conn_max_age": 0, "pool": True}),
]  # fmt: skip
PG_DATABASE = "bench"


@dataclass
class Config:
    """One handshake row: a server and how its clients present their tokens."""

    label: str
    server: str
    source: str  # "subprotocol", "header" or "-"
    kind: str | None  # the credential: "drf", "jwt", "jwks"; None: no authentication
    scheme: str = "Bearer"

    def client(self, port: int, user: str, tokens: dict[str, str]) -> Client:
        if self.kind is None:
            return Client(port, [], "-")
        token = tokens[self.kind]
        if self.source == "subprotocol":
            return Client(port, [("Sec-WebSocket-Protocol", f"access_token, {token}")], user, "access_token")
        return Client(port, [("Authorization", f"{self.scheme} {token}")], user)

    def clients(self, port: int, credentials: list[tuple[str, dict[str, str]]]) -> list[Client]:
        """One client per user: each load worker is a user of its own, as real traffic is.

        (With one token for all, concurrent handshakes would share their
        lookups, flights.py, and the table would measure the storm case.)
        """
        return [self.client(port, user, tokens) for user, tokens in credentials]


BEARER_DRF = "channels-bearer DRFTokenBackend"
BEARER_JWT = "channels-bearer SimpleJWTBackend"
PEER_DRF = "channels-auth-token-middlewares DRF"
PEER_JWT = "channels-auth-token-middlewares SimpleJWT"
#: credential kind → (name in targets, channels-bearer's server, the peer's server)
COMPARED = {"drf": ("DRF", "drf", "peer-drf"), "jwt": ("SimpleJWT", "simplejwt", "peer-jwt")}
#: (name in targets, server) of the warm cached rows
CACHED = [("DRF token", "drf-cached"), ("SimpleJWT user", "jwt-cached")]
#: The cached DRF row again with issue 17's signals and metrics on: (label, server).
OPERATIONS = [("metrics + async receivers", "drf-cached-async"), ("metrics + sync receivers", "drf-cached-sync")]


def handshake_rows(mode: Mode) -> list[Config]:
    """Every table's rows; SQLite's also the browser's source (subprotocol) and JWKSBackend."""
    sources = ("header",) if mode.postgresql else ("subprotocol", "header")
    rows = [
        Config("no authentication (the limit)", "noauth", "-", None),
        Config(PEER_DRF, "peer-drf", "header", "drf", scheme="Token"),
        Config(PEER_JWT, "peer-jwt", "header", "jwt"),
        *(Config(BEARER_DRF, "drf", source, "drf") for source in sources),
        *(Config(BEARER_JWT, "simplejwt", source, "jwt") for source in sources),
        Config(f"{BEARER_DRF}, cached", "drf-cached", "header", "drf"),
        Config(f"{BEARER_JWT}, user cached", "jwt-cached", "header", "jwt"),
    ]
    if not mode.postgresql:
        rows.append(Config("channels-bearer JWKSBackend (RS256)", "jwks", "header", "jwks"))
        rows += [Config(f"{BEARER_DRF}, cached, {label}", server, "header", "drf") for label, server in OPERATIONS]
    return rows


INPROC_CASES = ["DRFTokenBackend", "DRFTokenBackend, cached", "SimpleJWTBackend", "JWKSBackend (RS256)"]
MIXIN_TARGET = "idle socket with BearerConsumerMixin ≤ 1.2× the bare middleware's KiB per socket"


def revocation_target(n: int) -> str:
    return f"revocation fan-out: all {n:,} sockets of one user over two daphne processes closed < 0.5 s"


def storm_target(params: Params, name: str) -> str:
    sockets = params.storm_users * params.storm_sockets_per_user
    return f"reconnect storm, {name}: {sockets:,} sockets / {params.storm_users} tokens ≤ {params.storm_users} lookups, all reconnected"


def target_names(params: Params) -> list[str]:
    names = []
    for name, _, _ in COMPARED.values():
        names.append(f"PostgreSQL, CONN_MAX_AGE = 0: {name} ≥ 1.2× the peer")
        names.append(f"PostgreSQL, CONN_MAX_AGE = 0: {name} new connections / handshake ≤ the peer's")
    for name, _, _ in COMPARED.values():
        names.append(f"SQLite, defaults: {name} ≥ 1.0× the peer")
    for database in ("SQLite", "PostgreSQL"):
        for name, _ in CACHED:
            names.append(f"warm cached {name}, {database}: ≥ 0.90× no-auth, 0 queries")
    names += [storm_target(params, name) for name, _, _ in COMPARED.values()]
    names.append(MIXIN_TARGET)
    names += [f"in-process {case} ≤ 1.2× the floor" for case in INPROC_CASES]
    names.append(revocation_target(params.revoke_sockets))
    return names


class Bench:
    def __init__(self, params: Params, quick: bool) -> None:
        self.params = params
        self.quick = quick
        self.lines: list[str] = []
        # Every target, declared up front: a section that fails still shows its lines.
        self.targets: dict[str, tuple[str, bool | None]] = {name: ("not measured", None) for name in target_names(params)}
        self.notes: list[str] = []
        self.failures_total = 0
        self.publish = False

    def out(self, line: str = "") -> None:
        self.lines.append(line)
        print(line, flush=True)

    def target(self, name: str, measured: str, passed: bool | None) -> None:
        assert name in self.targets, name
        self.targets[name] = (measured, passed)

    # -- setup --

    def setup(self) -> None:
        if shutil.which("taskset") is None:
            raise SystemExit("bench: taskset (util-linux) is required to pin the server to one core.")
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) < 2 or SERVER_CORE not in cores or CLIENT_CORE not in cores:
            raise SystemExit(f"bench: needs cores {SERVER_CORE} and {CLIENT_CORE}; this process may use {cores}.")
        os.sched_setaffinity(0, {CLIENT_CORE})
        sys.path[:0] = [str(ROOT), str(BENCH)]
        os.environ["DJANGO_SETTINGS_MODULE"] = "benchproject.settings"
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        storm = self.params.storm_users * self.params.storm_sockets_per_user
        wanted = 4 * max(self.params.idle_sockets, self.params.revoke_sockets, storm) + 256
        if soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
        RESULTS.mkdir(exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix="run-", dir=RESULTS))
        self.db = self.tmp / "db.sqlite3"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "BENCH_"))},
            "DJANGO_SETTINGS_MODULE": "benchproject.settings",
            "DJANGO_DB_PATH": str(self.db),
            "PYTHONPATH": PYTHONPATH,
            "PYTHONUNBUFFERED": "1",
        }
        self.env.pop("REDIS_URL", None)
        os.environ.update(DJANGO_DB_PATH=str(self.db))
        self.redis: subprocess.Popen[bytes] | None = None
        self.redis_url: str | None = None
        redis_server = shutil.which("redis-server")
        if redis_server:
            port = free_port()
            self.redis = subprocess.Popen(
                [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                stdout=(self.tmp / "redis.log").open("wb"),
                stderr=subprocess.STDOUT,
            )
            self.redis_url = f"redis://127.0.0.1:{port}/0"
            # This process calls adisconnect_user() through the same Redis channel layer.
            os.environ["REDIS_URL"] = self.redis_url
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
                time.sleep(0.05)
        else:
            self.notes.append("redis-server not found: the revocation fan-out was not measured.")
        self.pg = self.start_postgres()
        # This process' own connection is kept (the servers' BENCH_CONFIG say
        # theirs): the in-process floor is one hop on an open connection.
        os.environ["BENCH_CONFIG"] = json.dumps({"db": {"engine": "sqlite", "conn_max_age": None}})
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        if self.pg is not None:
            call_command("migrate", database="pg", verbosity=0, interactive=False)
        self.jwks = jwks_server()
        self.make_users()

    def start_postgres(self) -> Any:
        """A throwaway cluster on core 0 beside the servers, logging each session it accepts; None if impossible."""
        from tests.support.servers import PostgresProcess

        try:
            pg = PostgresProcess(options="-c log_connections=on", cores=str(SERVER_CORE))
            pg.start()
            pg.create_database(PG_DATABASE)
        except BaseException as exc:  # noqa: BLE001 - pytest.skip() is how postgres_bindir says "not installed"
            self.notes.append(f"PostgreSQL could not start ({type(exc).__name__}: {exc}): its tables were not measured.")
            return None
        self.pg_address = {"host": str(pg.socket_dir), "port": str(pg.port), "user": pg.user, "name": PG_DATABASE}
        # This process fills that database too, through the alias "pg" (benchproject/settings.py).
        os.environ["BENCH_PG"] = json.dumps(self.pg_address)
        return pg

    def make_users(self) -> None:
        """The same users and tokens in every database: explicit ids, so one JWT fits all."""
        from django.contrib.auth import get_user_model
        from rest_framework.authtoken.models import Token
        from rest_framework_simplejwt.tokens import AccessToken

        user_model = get_user_model()
        p = self.params
        names = [USER, REVOKEE, *(f"bench-{i:02d}" for i in range(p.concurrency)), *(f"storm-{i:03d}" for i in range(p.storm_users))]
        users = [user_model(id=pk, username=name) for pk, name in enumerate(names, 1)]
        for user in users:
            user.set_unusable_password()
        self.tokens: dict[str, dict[str, str]] = {
            user.username: {
                "drf": Token.generate_key(),
                "jwt": str(AccessToken.for_user(user)),
                "jwks": jwks_token(self.jwks, user.username),
            }
            for user in users
        }
        for alias in ["default"] + (["pg"] if self.pg is not None else []):
            user_model.objects.using(alias).bulk_create(users)
            Token.objects.using(alias).bulk_create([Token(key=self.tokens[u.username]["drf"], user_id=u.pk) for u in users])
        self.user = users[0]
        self.revokee = users[1]
        self.drf, self.jwt, self.jwks_token = (self.tokens[USER][kind] for kind in ("drf", "jwt", "jwks"))
        self.revokee_jwt = self.tokens[REVOKEE]["jwt"]
        #: the load workers' users, one each
        self.workers = [(name, self.tokens[name]) for name in names if name.startswith("bench-")]
        self.storm_users = [(name, self.tokens[name]) for name in names if name.startswith("storm-")]

    def teardown(self) -> None:
        if self.redis is not None:
            self.redis.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.redis.wait(10)
        if getattr(self, "jwks", None) is not None:
            self.jwks.stop()
        if getattr(self, "pg", None) is not None:
            self.pg.cleanup()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def db_config(self, mode: Mode) -> dict[str, Any]:
        return {**mode.db, **self.pg_address} if mode.postgresql else mode.db

    def sessions(self) -> int:
        """Sessions PostgreSQL has accepted on the bench's database, from its own log (log_connections)."""
        with self.pg.log.open(errors="replace") as log:
            return sum(1 for line in log if "connection authorized" in line and f"database={PG_DATABASE}" in line)

    # -- 1. handshakes --

    def handshake_specs(self, mode: Mode) -> dict[str, dict[str, Any]]:
        db = self.db_config(mode)

        def bearer(backends: list[str], **extra: Any) -> dict[str, Any]:
            return {"stack": "bearer", "db": db, "bearer": {"BACKENDS": backends, **extra}}

        specs = {
            "noauth": {"stack": "noauth", "db": db},
            "peer-drf": {"stack": "peer-drf", "db": db},
            "peer-jwt": {"stack": "peer-jwt", "db": db},
            "drf": bearer([DRF]),
            "simplejwt": bearer([SIMPLEJWT]),
            "drf-cached": bearer([DRF], CACHE="default", CACHE_TTL=CACHED_TTL),
            "jwt-cached": bearer([SIMPLEJWT], CACHE="default", CACHE_TTL=CACHED_TTL),
        }
        if not mode.postgresql:
            specs["jwks"] = bearer([JWKS], JWKS=self.jwks.settings()["JWKS"])
            for kind in ("async", "sync"):
                specs[f"drf-cached-{kind}"] = {
                    **bearer([DRF], CACHE="default", CACHE_TTL=CACHED_TTL, METRICS=True),
                    "signals": kind,
                }
        return specs

    def handshakes(self, mode: Mode) -> None:
        p = self.params
        title = f"### Handshakes, {mode.title}"
        if mode.postgresql and self.pg is None:
            self.out(title)
            self.out()
            self.out("not measured: PostgreSQL could not start (see the notes below)")
            self.out()
            return
        rows = handshake_rows(mode)
        servers = start_servers(self.handshake_specs(mode), self.env, self.tmp)
        results = {(c.server, c.source): LoadResult() for c in rows}
        try:

            async def run() -> None:
                # Warm-up, not counted: imports, the JWKS download, each user's first cache fill.
                for config in rows:
                    await load(config.clients(servers[config.server].port, self.workers), 0.3, p.concurrency)
                for round_ in range(p.rounds):
                    # A/B/A/B: every configuration once per round, the order
                    # rotated each round so no one always follows the same one.
                    shift = round_ % len(rows)
                    for config in rows[shift:] + rows[:shift]:
                        server = servers[config.server]
                        before, sessions = server.stats(), self.sessions() if mode.postgresql else 0
                        result = await load(config.clients(server.port, self.workers), p.seconds, p.concurrency)
                        after = server.stats()
                        result.queries = after["queries"] - before["queries"]
                        # PostgreSQL counts its sessions itself (a pool's checkout is no new one);
                        # on SQLite, Django's connection_created in the server.
                        opened = self.sessions() - sessions if mode.postgresql else after["connections"] - before["connections"]
                        result.connections = opened
                        results[(config.server, config.source)].add(result)

            asyncio.run(run())
        finally:
            for server in servers.values():
                server.stop()
        self.report_handshakes(mode, rows, results)

    def report_handshakes(self, mode: Mode, rows: list[Config], results: dict[tuple[str, str], LoadResult]) -> None:
        p = self.params

        def result(server: str, source: str = "header") -> LoadResult:
            return results[(server, source)]

        limit = result("noauth", "-").rate
        peers = {"drf": result("peer-drf").rate, "jwt": result("peer-jwt").rate, "jwks": result("peer-jwt").rate}
        self.out(
            f"### Handshakes, {mode.title} ({p.concurrency} concurrent clients, a user each; "
            f"{p.rounds} interleaved round(s) of {p.seconds:g} s per row)"
        )
        self.out()
        self.out(
            "| configuration | source | handshakes/s (median round) | × no-auth | × the peer | p50 ms | p99 ms "
            "| SQL queries / handshake | new DB connections / handshake | ok | failed |"
        )
        self.out("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for config in rows:
            r = results[(config.server, config.source)]
            failed = sum(r.failures.values())
            self.failures_total += failed
            per = (lambda n: f"{n / r.ok:.2f}") if r.ok else (lambda n: "n/a")
            versus = "—" if config.kind is None or config.server.startswith("peer-") else f"{r.rate / peers[config.kind]:.2f}" if peers[config.kind] else "n/a"
            self.out(
                f"| {config.label} | {config.source} | {r.rate:,.0f} | {r.rate / limit if limit else 0:.2f} | {versus} | "
                f"{r.percentile(50):.1f} | {r.percentile(99):.1f} | {per(r.queries)} | {per(r.connections)} | {r.ok:,} | {failed:,} |"
            )
        self.out()
        for config in rows:
            r = results[(config.server, config.source)]
            if r.failures:
                detail = ", ".join(f"{n} × {kind}" for kind, n in r.failures.most_common())
                self.out(f"- failures, {config.label} ({config.source}): {detail}")
        self.out()

        def per_handshake(r: LoadResult, count: int) -> float:
            return count / r.ok if r.ok else float("inf")

        for name, ours, peer in COMPARED.values():
            ratio = result(ours).rate / result(peer).rate if result(peer).rate else 0.0
            if mode.key == "pg":
                self.target(f"PostgreSQL, CONN_MAX_AGE = 0: {name} ≥ 1.2× the peer", f"{ratio:.2f}×", ratio >= 1.2)
                mine = per_handshake(result(ours), result(ours).connections)
                theirs = per_handshake(result(peer), result(peer).connections)
                self.target(
                    f"PostgreSQL, CONN_MAX_AGE = 0: {name} new connections / handshake ≤ the peer's",
                    f"{mine:.2f} (the peer: {theirs:.2f})",
                    mine <= theirs,
                )
            elif mode.key == "sqlite":
                self.target(f"SQLite, defaults: {name} ≥ 1.0× the peer", f"{ratio:.2f}×", ratio >= 1.0)
        if mode.key in ("sqlite", "pg"):
            database = "PostgreSQL" if mode.postgresql else "SQLite"
            for name, server in CACHED:
                r = result(server)
                ratio = r.rate / limit if limit else 0.0
                self.target(
                    f"warm cached {name}, {database}: ≥ 0.90× no-auth, 0 queries",
                    f"{ratio:.2f}×, {r.queries} queries in {r.ok:,}",
                    ratio >= 0.90 and r.ok > 0 and r.queries == 0,
                )

    # -- 2. reconnect storm --

    def storm(self) -> None:
        p = self.params
        users, per_user = p.storm_users, p.storm_sockets_per_user
        n = users * per_user
        mode = MODES[1] if self.pg is not None else MODES[0]
        db = self.db_config(mode)
        self.out(
            f"### Reconnect storm ({n:,} sockets of {users} users, {per_user} each with one token, "
            f"opened all at once; {mode.title}; daphne listening with backlog={STORM_BACKLOG})"
        )
        self.out()
        specs = {
            "drf": {"stack": "bearer", "db": db, "bearer": {"BACKENDS": [DRF]}, "backlog": STORM_BACKLOG},
            "simplejwt": {"stack": "bearer", "db": db, "bearer": {"BACKENDS": [SIMPLEJWT]}, "backlog": STORM_BACKLOG},
            # The README's production wiring: CACHE on, so refusals are remembered (NEGATIVE_CACHE_TTL).
            "refused": {"stack": "bearer", "db": db, "bearer": {"BACKENDS": [DRF], "CACHE": "default"}, "backlog": STORM_BACKLOG},
            # For comparison, not a target: daphne as it listens by default (-b/-p, backlog 50).
            "simplejwt-backlog-50": {"stack": "bearer", "db": db, "bearer": {"BACKENDS": [SIMPLEJWT]}},
        }
        servers = start_servers(specs, self.env, self.tmp)
        self.out("| storm | settings | sockets | opened | refused as expected | all in after s | database lookups (SQL queries) | failed |")
        self.out("|---|---|---:|---:|---:|---:|---:|---:|")

        def clients_of(config: Config, accounts: list[tuple[str, dict[str, str]]]) -> list[Client]:
            port = servers[config.server].port
            return [config.client(port, user, tokens) for user, tokens in accounts for _ in range(per_user)]

        def storm_row(label: str, settings: str, config: Config, clients: list[Client], *, refusal: bool = False) -> tuple[int, int, Counter[str], float]:
            """One storm and its row: (queries, sockets opened or refused, failures, seconds)."""
            queries, count, failures, took = self.one_storm(servers[config.server], clients, expect_refusal=refusal)
            failed = sum(failures.values())
            self.failures_total += failed
            opened, refused = (0, f"{count:,}") if refusal else (count, "—")
            self.out(f"| {label} | {settings} | {n:,} | {opened:,} | {refused} | {took:.2f} | {queries:,} | {failed:,} |")
            return queries, count, failures, took

        try:
            for name, server, kind in [("DRF", "drf", "drf"), ("SimpleJWT", "simplejwt", "jwt")]:
                config = Config(name, server, "subprotocol", kind)
                clients = clients_of(config, self.storm_users)
                queries, opened, failures, took = storm_row(f"{name} tokens", "defaults (no CACHE)", config, clients)
                self.target(
                    storm_target(p, name),
                    f"{queries:,} lookups, {opened:,}/{n:,} in ({took:.2f} s)",
                    queries <= users and opened == n,
                )
                if failures:
                    self.notes.append(f"storm, {name}: " + ", ".join(f"{v} × {k}" for k, v in failures.items()))
            config = Config("SimpleJWT", "simplejwt-backlog-50", "subprotocol", "jwt")
            storm_row("SimpleJWT tokens, daphne's default backlog (50)", "defaults (no CACHE)", config, clients_of(config, self.storm_users))
            unknown = [(f"storm-{i:03d}", {"drf": os.urandom(20).hex()}) for i in range(users)]
            config = Config("refused", "refused", "subprotocol", "drf")
            clients = clients_of(config, unknown)
            for wave in ("first", "second, at once after"):
                storm_row(f"{users} unknown DRF tokens, {wave}", "CACHE (NEGATIVE_CACHE_TTL 5 s)", config, clients, refusal=True)
        finally:
            for server in servers.values():
                server.stop()
        self.out()

    def one_storm(self, server: Server, clients: list[Client], *, expect_refusal: bool) -> tuple[int, int, Counter[str], float]:
        """Open every client at once; (queries the server ran, sockets opened or refused, failures, seconds until the last)."""

        async def run() -> tuple[int, Counter[str], float]:
            started = time.perf_counter()
            opened, failures = await open_many(clients, len(clients), timeout=60)
            took = time.perf_counter() - started
            for _, writer in opened:
                writer.close()
            if expect_refusal:
                refused = failures.pop("HTTP 403", 0)
                if opened:
                    failures["opened, should have been refused"] += len(opened)
                return refused, failures, took
            return len(opened), failures, took

        before = server.queries()
        count, failures, took = asyncio.run(run())
        return server.queries() - before, count, failures, took

    # -- 3. in-process --

    def inprocess(self) -> None:
        from channels.db import database_sync_to_async
        from django.contrib.auth import get_user_model
        from django.core.cache import caches
        from django.test import override_settings
        from rest_framework.authtoken.models import Token

        from channels_bearer.middleware import BearerAuthMiddleware

        p = self.params
        user_model = get_user_model()

        async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
            assert scope["user"].username == USER

        middleware = BearerAuthMiddleware(inner)

        def scope_for(token: str) -> dict[str, Any]:
            return {
                "type": "websocket",
                "path": "/ws/",
                "query_string": b"",
                "headers": [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {token}".encode())],
                "subprotocols": [],
            }

        def drf_floor_sync(key: str) -> Any:
            user = Token.objects.select_related("user").get(key=key).user
            assert user.is_active
            return user

        from channels_bearer.cache import entry_key, user_version_key
        from channels_bearer.identity import token_hash_id

        cache = caches["default"]

        async def cached_floor() -> Any:
            # The lookup cache's own hit, read where it is cheapest (on the loop):
            # the keyed entry and the user's version, as the cache's design needs.
            entry = cache.get(entry_key(token_hash_id(self.drf)))
            assert cache.get(user_version_key(entry["user_pk"])) == entry["user_version"]
            user = entry["user"]
            assert user.is_active
            return user

        def jwt_floor_sync(token: str) -> Any:
            from rest_framework_simplejwt.tokens import AccessToken

            user = user_model.objects.get(id=AccessToken(token)["user_id"])
            assert user.is_active
            return user

        import jwt as pyjwt

        from tests.support.jwks import AUDIENCE as JWKS_AUDIENCE

        jwks_key = pyjwt.PyJWK(json.loads(json.dumps(self.jwks_public_jwk())), algorithm="RS256")

        async def jwks_floor(token: str) -> Any:
            claims = pyjwt.decode(token, jwks_key, algorithms=["RS256"], audience=JWKS_AUDIENCE, issuer=self.jwks.issuer)
            return await database_sync_to_async(lambda: user_model.objects.get(username=claims["sub"]))()

        drf_floor = database_sync_to_async(drf_floor_sync)
        jwt_floor = database_sync_to_async(jwt_floor_sync)

        cases: list[tuple[str, dict[str, Any], str, Any, str]] = [
            ("DRFTokenBackend", {"BACKENDS": [DRF]}, self.drf, lambda: drf_floor(self.drf),
             "one database hop: Token select_related('user') get"),
            ("DRFTokenBackend, cached", {"BACKENDS": [DRF], "CACHE": "default", "CACHE_TTL": CACHED_TTL}, self.drf, cached_floor,
             "no hop: the lookup cache's hit (HMAC key, entry and user-version gets from LocMem)"),
            ("SimpleJWTBackend", {"BACKENDS": [SIMPLEJWT]}, self.jwt, lambda: jwt_floor(self.jwt),
             "one database hop: AccessToken(token) + user get"),
            ("JWKSBackend (RS256)", {"BACKENDS": [JWKS], "JWKS": self.jwks.settings()["JWKS"]}, self.jwks_token,
             lambda: jwks_floor(self.jwks_token), "jwt.decode (RS256, PyJWK) + one database hop: user get"),
        ]  # fmt: skip

        async def per_call(make: Any, n: int) -> float:
            started = time.perf_counter()
            for _ in range(n):
                await make()
            return (time.perf_counter() - started) / n

        def ours_factory(token: str) -> Any:
            async def ours() -> None:
                async def receive() -> dict[str, Any]:
                    return {"type": "websocket.connect"}

                async def send(message: dict[str, Any]) -> None:
                    raise AssertionError(f"refused: {message}")

                await middleware(scope_for(token), receive, send)

            return ours

        self.out("### In-process cost per connect (no server; the same token, one connect at a time)")
        self.out()
        self.out("| backend | middleware µs | floor µs | × floor | the floor |")
        self.out("|---|---:|---:|---:|---|")
        for name, bearer, token, floor, floor_is in cases:
            with override_settings(CHANNELS_BEARER={"METRICS": False, **bearer}):
                ours = ours_factory(token)

                async def measure() -> tuple[float, float]:
                    await per_call(ours, 20)
                    await per_call(floor, 20)
                    mine, base = [], []
                    for _ in range(p.inproc_batches):  # interleaved batches
                        mine.append(await per_call(ours, p.inproc_calls))
                        base.append(await per_call(floor, p.inproc_calls))
                    return statistics.median(mine), statistics.median(base)

                mine, base = asyncio.run(measure())
            ratio = mine / base
            self.out(f"| {name} | {mine * 1e6:.0f} | {base * 1e6:.0f} | {ratio:.2f} | {floor_is} |")
            self.target(f"in-process {name} ≤ 1.2× the floor", f"{ratio:.2f}×", ratio <= 1.2)
        self.out()
        self.operations_cost(ours_for=ours_factory, per_call=per_call)

    def operations_cost(self, *, ours_for: Any, per_call: Any) -> None:
        """What signals and metrics add to a warm handshake (the cached DRF token: the cheapest, where it shows most)."""
        from django.test import override_settings

        from benchproject import receivers

        p = self.params
        base = {"BACKENDS": [DRF], "CACHE": "default", "CACHE_TTL": CACHED_TTL}
        cases = [
            ("none (METRICS False, no receiver)", False, None),
            ("metrics on", True, None),
            ("metrics + a do-nothing async receiver on each signal", True, "async"),
            ("metrics + a do-nothing sync receiver on each signal", True, "sync"),
        ]
        ours = ours_for(self.drf)
        measured: list[tuple[str, float]] = []
        for name, metrics_on, signals in cases:
            if signals is not None:
                receivers.connect(signals)
            try:
                with override_settings(CHANNELS_BEARER={**base, "METRICS": metrics_on}):

                    async def measure() -> float:
                        await per_call(ours, 20)
                        return statistics.median([await per_call(ours, p.inproc_calls) for _ in range(p.inproc_batches)])

                    measured.append((name, asyncio.run(measure())))
            finally:
                receivers.disconnect()
        floor = measured[0][1]
        self.out("### Signals and metrics: what they add to a warm handshake (in process, cached DRF token)")
        self.out()
        self.out("| enabled | µs per connect | added µs |")
        self.out("|---|---:|---:|")
        for name, seconds in measured:
            self.out(f"| {name} | {seconds * 1e6:.0f} | {(seconds - floor) * 1e6:+.0f} |")
        self.out()

    def jwks_public_jwk(self) -> dict[str, Any]:
        from tests.support.keys import RSA_KEY_1, RSA_KID_1, public_jwk

        return public_jwk(RSA_KEY_1, RSA_KID_1)

    # -- 4. memory --

    def memory(self) -> None:
        n = self.params.idle_sockets
        specs = {
            "noauth": {"stack": "noauth"},
            "bearer": {"stack": "bearer", "bearer": {"BACKENDS": [SIMPLEJWT]}},
            "bearer-mixin": {"stack": "bearer", "consumer": "mixin", "bearer": {"BACKENDS": [SIMPLEJWT]}},
            "peer": {"stack": "peer-jwt"},
        }
        rows = [
            ("no authentication", "noauth", None),
            ("channels-bearer SimpleJWT, plain consumer", "bearer", "subprotocol"),
            ("channels-bearer SimpleJWT, BearerConsumerMixin", "bearer-mixin", "subprotocol"),
            ("channels-auth-token-middlewares SimpleJWT", "peer", "header"),
        ]
        self.out(f"### Memory per idle connection (RSS of the daphne process, {n:,} open sockets)")
        self.out()
        self.out("| server | sockets open | RSS before MiB | RSS with sockets MiB | KiB / connection | × no-auth | failed |")
        self.out("|---|---:|---:|---:|---:|---:|---:|")
        per: dict[str, float] = {}
        for label, name, source in rows:
            # One server at a time: a fresh process, so nothing else shares its heap.
            servers = start_servers({name: specs[name]}, self.env, self.tmp)
            server = servers[name]
            try:
                config = Config(label, name, source or "-", "jwt" if source else None)
                client = config.client(server.port, USER, self.tokens[USER])

                async def run() -> tuple[int, int, int, Counter[str]]:
                    await load([client], 0.3, 10)  # warm-up
                    await asyncio.sleep(0.5)
                    before = server.rss_kib()
                    opened, failures = await open_many([client] * n, 50)
                    await asyncio.sleep(1.0)
                    after = server.rss_kib()
                    for _, writer in opened:
                        writer.close()
                    return before, after, len(opened), failures

                before, after, count, failures = asyncio.run(run())
            finally:
                server.stop()
            failed = sum(failures.values())
            self.failures_total += failed
            per[name] = (after - before) / count if count else float("nan")
            ratio = per[name] / per["noauth"] if per.get("noauth") else float("nan")
            self.out(
                f"| {label} | {count:,} | {before / 1024:.1f} | {after / 1024:.1f} | {per[name]:.1f} | {ratio:.2f} | {failed:,} |"
            )
            if failures:
                self.notes.append(f"memory, {label}: " + ", ".join(f"{k} × {v}" for v, k in failures.items()))
        self.out()
        ratio = per["bearer-mixin"] / per["bearer"] if per.get("bearer") else float("nan")
        self.target(MIXIN_TARGET, f"{ratio:.2f}× ({per['bearer-mixin']:.1f} against {per['bearer']:.1f} KiB)", ratio <= 1.2)

    # -- 5. revocation --

    def revocation(self) -> None:
        n = self.params.revoke_sockets
        name = revocation_target(n)
        self.out(f"### Revocation fan-out (adisconnect_user → the last of {n:,} sockets closed; 2 daphne processes, channels-redis)")
        self.out()
        if self.redis_url is None:
            self.out("not measured: redis-server not found")
            self.out()
            self.target(name, "not measured", None)
            return
        spec = {"stack": "bearer", "consumer": "mixin", "redis": self.redis_url, "bearer": {"BACKENDS": [SIMPLEJWT]}}
        servers = start_servers({"revoke-a": spec, "revoke-b": spec}, self.env, self.tmp)
        try:
            from channels_bearer.revoke import adisconnect_user

            async def run() -> tuple[float, int, Counter[Any], Counter[str], float]:
                clients = [
                    Config("revokee", server, "subprotocol", "jwt").client(servers[server].port, REVOKEE, self.tokens[REVOKEE])
                    for server in ("revoke-a", "revoke-b")
                    for _ in range(n // 2)
                ]
                opened, failures = await open_many(clients, 50)
                await asyncio.sleep(1.0)
                closed = [{} for _ in opened]
                holders = [asyncio.create_task(hold(r, w, c)) for (r, w), c in zip(opened, closed)]
                await asyncio.sleep(0.2)
                started = time.perf_counter()
                await adisconnect_user(self.revokee.pk)
                call = time.perf_counter() - started
                try:
                    async with asyncio.timeout(30):
                        await asyncio.gather(*holders)
                except TimeoutError:
                    failures["still open after 30 s"] += sum(1 for c in closed if "at" not in c)
                    for task in holders:
                        task.cancel()
                done = [c for c in closed if "at" in c]
                last = max((c["at"] for c in done), default=started) - started
                codes = Counter(c["code"] for c in done)
                return last, len(opened), codes, failures, call

            last, count, codes, failures, call = asyncio.run(run())
        finally:
            for server in servers.values():
                server.stop()
        wrong = sum(v for k, v in codes.items() if k != 4403)
        failed = sum(failures.values()) + wrong
        self.failures_total += failed
        self.out("| sockets open | closed with 4403 | other closes | last closed after ms | adisconnect_user() returned after ms | failed |")
        self.out("|---:|---:|---:|---:|---:|---:|")
        self.out(f"| {count:,} | {codes.get(4403, 0):,} | {wrong:,} | {last * 1000:.0f} | {call * 1000:.1f} | {failed:,} |")
        self.out()
        if failures or wrong:
            detail = ", ".join(f"{v} × {k}" for k, v in failures.items())
            detail += ", ".join(f"{v} × close {k}" for k, v in codes.items() if k != 4403)
            self.out(f"- failures: {detail}")
            self.out()
        ok = count == n and codes.get(4403, 0) == n and last < 0.5
        self.target(name, f"{last * 1000:.0f} ms, {codes.get(4403, 0):,}/{n:,} closed", ok)

    # -- report --

    def header(self) -> None:
        from importlib.metadata import version

        def v(name: str) -> str:
            try:
                return version(name)
            except Exception:
                return "not installed"

        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        cpu = next(
            (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
            platform.processor() or "unknown CPU",
        )
        self.out(f"## channels-bearer benchmark{' (--quick: smoke run, numbers not meaningful)' if self.quick else ''}")
        self.out()
        self.out(f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; commit {commit or 'unknown'}")
        self.out(
            f"- machine: {cpu}, {os.cpu_count()} cores, Linux {platform.release()}; "
            f"server pinned to core {SERVER_CORE} (taskset), load client to core {CLIENT_CORE}"
        )
        self.out(
            f"- Python {platform.python_version()}, Django {v('django')}, channels {v('channels')}, daphne {v('daphne')}, "
            f"channels-bearer {v('channels-bearer')}, channels-auth-token-middlewares {v('channels-auth-token-middlewares')}, "
            f"simplejwt {v('djangorestframework-simplejwt')}, PyJWT {v('pyjwt')}, channels-redis {v('channels-redis')}, "
            f"psycopg {v('psycopg')}, psycopg-pool {v('psycopg-pool')}, SQLite {__import__('sqlite3').sqlite_version}, "
            f"PostgreSQL {self.pg_version()}"
        )
        self.out()

    def pg_version(self) -> str:
        if self.pg is None:
            return "not started"
        from django.db import connections

        with connections["pg"].cursor() as cursor:
            cursor.execute("SHOW server_version")
            return str(cursor.fetchone()[0]).split()[0]

    def footer(self) -> None:
        self.out("### Targets")
        self.out()
        self.out("| target | measured | result |")
        self.out("|---|---:|---|")
        for name, (measured, passed) in self.targets.items():
            result = "NOT MEASURED" if passed is None else ("PASS" if passed else "FAIL")
            self.out(f"| {name} | {measured} | {result} |")
        self.out()
        verdicts = [passed for _, passed in self.targets.values()]
        self.out(
            f"Targets: {verdicts.count(True)} met, {verdicts.count(False)} missed, "
            f"{verdicts.count(None)} not measured (of {len(verdicts)})."
        )
        self.out()
        for note in self.notes:
            self.out(f"- {note}")
        # Not a verdict on the targets: handshakes that failed outright (a
        # refused or dropped connection where one should open) and sections
        # that raised. Any of these makes the figures above suspect.
        self.out(f"Failed handshakes and broken sections: {self.failures_total:,}")

    def run(self) -> None:
        self.setup()
        try:
            self.header()
            sections: list[tuple[str, Callable[[], None]]] = [
                *((f"handshakes ({mode.key})", functools.partial(self.handshakes, mode)) for mode in MODES),
                ("storm", self.storm),
                ("inprocess", self.inprocess),
                ("memory", self.memory),
                ("revocation", self.revocation),
            ]
            for name, section in sections:
                try:
                    section()
                except Exception:
                    # A broken section is reported, and the others still run.
                    self.failures_total += 1
                    self.out(f"**{name} failed:**")
                    self.out("```")
                    self.out(traceback.format_exc().rstrip())
                    self.out("```")
                    self.out()
            self.footer()
        finally:
            self.teardown()
        RESULTS.mkdir(exist_ok=True)
        text = "\n".join(self.lines) + "\n"
        (RESULTS / ("quick.md" if self.quick else "latest.md")).write_text(text)
        if self.publish:
            PUBLISHED.mkdir(exist_ok=True)
            # One heading level down: the page that includes it has its own.
            (PUBLISHED / "run.md").write_text("".join("#" + line if line.startswith("#") else line for line in text.splitlines(True)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds; numbers are not meaningful")
    parser.add_argument("--publish", action="store_true", help="also write bench/published/run.md, which the docs include")
    args = parser.parse_args(argv)
    if args.publish and args.quick:
        parser.error("--publish takes a full run, not --quick")
    bench = Bench(QUICK if args.quick else FULL, args.quick)
    bench.publish = args.publish
    bench.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
