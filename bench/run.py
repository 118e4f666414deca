#!/usr/bin/env python3
"""channels-bearer's benchmark: ``python3 dev.py bench [--quick]`` (see bench/README.md).

Real daphne processes, one per configuration, pinned to core 0 with
``taskset -c 0``; this process (the load client) pinned to core 1. Measures:

1. handshake throughput and p50/p99 latency (connect → 101 → first frame →
   close handshake) with concurrent clients, rounds interleaved across
   configurations so that machine drift cancels; SQL statements per handshake,
   counted inside each server;
2. the in-process cost per connect of the middleware against the floor (the
   backend's own validation plus the user fetch, in one database hop);
3. RSS per idle connection with N open sockets;
4. revocation fan-out: ``adisconnect_user()`` to the last of N sockets closed,
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


@dataclass(frozen=True)
class Params:
    rounds: int
    seconds: float
    concurrency: int
    idle_sockets: int
    revoke_sockets: int
    inproc_calls: int
    inproc_batches: int


FULL = Params(rounds=4, seconds=5.0, concurrency=20, idle_sockets=1000, revoke_sockets=1000, inproc_calls=400, inproc_batches=7)
QUICK = Params(rounds=1, seconds=0.4, concurrency=20, idle_sockets=100, revoke_sockets=200, inproc_calls=50, inproc_batches=3)


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
    latencies: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    #: handshakes/s of each round
    rates: list[float] = field(default_factory=list)

    def add(self, other: LoadResult) -> None:
        self.ok += other.ok
        self.elapsed += other.elapsed
        self.rates.append(other.ok / other.elapsed if other.elapsed else 0.0)
        self.queries += other.queries
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


async def load(client: Client, seconds: float, concurrency: int) -> LoadResult:
    result = LoadResult()
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
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

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - started
    return result


async def open_many(clients: list[Client], concurrency: int) -> tuple[list[tuple[Any, Any]], Counter[str]]:
    """Open one socket per client, ``concurrency`` at a time; failures counted."""
    opened: list[tuple[Any, Any]] = []
    failures: Counter[str] = Counter()
    gate = asyncio.Semaphore(concurrency)

    async def one(client: Client) -> None:
        async with gate:
            try:
                async with asyncio.timeout(20):
                    opened.append(await client.open())
            except HandshakeFailed as exc:
                failures[str(exc)] += 1
            except TimeoutError:
                failures["timeout (20 s)"] += 1

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

    def queries(self) -> int:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(f"GET /bench/stats HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        return int(json.loads(data.split(b"\r\n\r\n", 1)[1])["queries"])

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
            command = [
                "taskset", "-c", str(SERVER_CORE),
                sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "benchproject.asgi:application",
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


@dataclass
class Config:
    """One handshake row: a server and how the client presents its token."""

    label: str
    server: str
    source: str  # "subprotocol", "header" or "-"
    token: str | None
    scheme: str = "Bearer"

    def client(self, port: int, user: str = USER) -> Client:
        if self.token is None:
            return Client(port, [], "-")
        if self.source == "subprotocol":
            return Client(port, [("Sec-WebSocket-Protocol", f"access_token, {self.token}")], user, "access_token")
        return Client(port, [("Authorization", f"{self.scheme} {self.token}")], user)


INPROC_CASES = ["DRFTokenBackend", "DRFTokenBackend, cached", "SimpleJWTBackend", "JWKSBackend (RS256)"]
SHARED = [("drf", "peer-drf", "DRF uncached", 1.0), ("simplejwt", "peer-jwt", "SimpleJWT", 1.0), ("drf-cached", "peer-drf", "DRF cached (caching applies)", 1.5)]


def revocation_target(n: int) -> str:
    return f"revocation fan-out: all {n:,} sockets of one user over two daphne processes closed < 1 s"


def target_names(params: Params) -> list[str]:
    names = []
    for name in ("SimpleJWT", "cached DRF"):
        for source in ("subprotocol", "header"):
            names.append(f"{name} ({source}) ≥ 0.90× no-auth throughput")
    for _, _, name, wanted in SHARED:
        for source in ("subprotocol", "header"):
            names.append(f"{name} ({source}) ≥ {wanted:.1f}× the peer")
    for source in ("subprotocol", "header"):
        names.append(f"0 queries per cached DRF handshake ({source})")
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
        wanted = 4 * max(self.params.idle_sockets, self.params.revoke_sockets) + 256
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
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        from django.contrib.auth import get_user_model

        from channels_bearer.tokens import make_token

        user_model = get_user_model()
        self.user = user_model.objects.create_user(USER)
        self.revokee = user_model.objects.create_user(REVOKEE)
        self.drf = make_token(self.user, "drf")
        self.jwt = make_token(self.user, "jwt")
        self.revokee_jwt = make_token(self.revokee, "jwt")
        self.jwks = jwks_server()
        self.jwks_token = jwks_token(self.jwks, USER)

    def teardown(self) -> None:
        if self.redis is not None:
            self.redis.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.redis.wait(10)
        if getattr(self, "jwks", None) is not None:
            self.jwks.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- 1. handshakes --

    def handshake_specs(self) -> tuple[dict[str, dict[str, Any]], list[Config]]:
        bearer = lambda backends, **extra: {"stack": "bearer", "bearer": {"BACKENDS": backends, **extra}}  # noqa: E731
        specs = {
            "noauth": {"stack": "noauth"},
            "drf": bearer([DRF]),
            "drf-cached": bearer([DRF], CACHE="default", CACHE_TTL=CACHED_TTL),
            "simplejwt": bearer([SIMPLEJWT]),
            "jwks": bearer([JWKS], JWKS=self.jwks.settings()["JWKS"]),
            "floor-drf": {"stack": "floor-drf"},
            "floor-jwt": {"stack": "floor-jwt"},
            "peer-drf": {"stack": "peer-drf"},
            "peer-jwt": {"stack": "peer-jwt"},
        }
        configs = [Config("no authentication (the limit)", "noauth", "-", None)]
        for server, label, token in [
            ("drf", "channels-bearer DRFTokenBackend", self.drf),
            ("drf-cached", "channels-bearer DRFTokenBackend, cached", self.drf),
            ("simplejwt", "channels-bearer SimpleJWTBackend", self.jwt),
            ("jwks", "channels-bearer JWKSBackend (RS256)", self.jwks_token),
        ]:
            for source in ("subprotocol", "header"):
                configs.append(Config(label, server, source, token))
        configs.append(Config("floor: DRF token query only, one hop", "floor-drf", "header", self.drf))
        configs.append(Config("floor: AccessToken + user get only, one hop", "floor-jwt", "header", self.jwt))
        configs.append(Config("channels-auth-token-middlewares DRF", "peer-drf", "header", self.drf, scheme="Token"))
        configs.append(Config("channels-auth-token-middlewares SimpleJWT", "peer-jwt", "header", self.jwt))
        return specs, configs

    def handshakes(self) -> dict[tuple[str, str], LoadResult]:
        p = self.params
        specs, configs = self.handshake_specs()
        servers = start_servers(specs, self.env, self.tmp)
        results = {(c.server, c.source): LoadResult() for c in configs}
        try:

            async def run() -> None:
                # Warm-up, not counted: imports, the JWKS download, the first cache fill.
                for config in configs:
                    await load(config.client(servers[config.server].port), 0.2, 4)
                for round_ in range(p.rounds):
                    # A/B/A/B: every configuration once per round, the order
                    # rotated each round so no one always follows the same one.
                    shift = round_ % len(configs)
                    for config in configs[shift:] + configs[:shift]:
                        server = servers[config.server]
                        before = server.queries()
                        result = await load(config.client(server.port), p.seconds, p.concurrency)
                        result.queries = server.queries() - before
                        results[(config.server, config.source)].add(result)

            asyncio.run(run())
        finally:
            for server in servers.values():
                server.stop()
        self.report_handshakes(configs, results)
        return results

    def report_handshakes(self, configs: list[Config], results: dict[tuple[str, str], LoadResult]) -> None:
        p = self.params
        limit = results[("noauth", "-")].rate
        self.out(
            f"### Handshakes through daphne ({p.concurrency} concurrent clients, "
            f"{p.rounds} interleaved round(s) of {p.seconds:g} s per row)"
        )
        self.out()
        self.out("| configuration | source | handshakes/s (median round) | × no-auth | p50 ms | p99 ms | SQL queries / handshake | ok | failed |")
        self.out("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for config in configs:
            r = results[(config.server, config.source)]
            self.failures_total += sum(r.failures.values())
            qph = f"{r.queries / r.ok:.2f}" if r.ok else "n/a"
            failed = sum(r.failures.values())
            self.out(
                f"| {config.label} | {config.source} | {r.rate:,.0f} | {r.rate / limit if limit else 0:.2f} | "
                f"{r.percentile(50):.1f} | {r.percentile(99):.1f} | {qph} | {r.ok:,} | {failed:,} |"
            )
        self.out()
        for config in configs:
            r = results[(config.server, config.source)]
            if r.failures:
                detail = ", ".join(f"{n} × {kind}" for kind, n in r.failures.most_common())
                self.out(f"- failures, {config.label} ({config.source}): {detail}")
        self.out()

        def rate(server: str, source: str) -> float:
            return results[(server, source)].rate

        floors = {"simplejwt": rate("floor-jwt", "header") / limit if limit else 0.0}
        for server, name in [("simplejwt", "SimpleJWT"), ("drf-cached", "cached DRF")]:
            for source in ("subprotocol", "header"):
                ratio = rate(server, source) / limit if limit else 0.0
                measured = f"{ratio:.2f}×"
                if server in floors:
                    measured += f" (the floor: {floors[server]:.2f}×)"
                self.target(f"{name} ({source}) ≥ 0.90× no-auth throughput", measured, ratio >= 0.90)
        for server, peer, name, wanted in SHARED:
            peer_rate = rate(peer, "header")
            for source in ("subprotocol", "header"):
                ratio = rate(server, source) / peer_rate if peer_rate else 0.0
                self.target(f"{name} ({source}) ≥ {wanted:.1f}× the peer", f"{ratio:.2f}×", ratio >= wanted)
        for source in ("subprotocol", "header"):
            r = results[("drf-cached", source)]
            self.target(
                f"0 queries per cached DRF handshake ({source})", f"{r.queries} in {r.ok:,} handshakes", r.ok > 0 and r.queries == 0
            )

    # -- 2. in-process --

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

        self.out("### In-process cost per connect (no server; the same token, one connect at a time)")
        self.out()
        self.out("| backend | middleware µs | floor µs | × floor | the floor |")
        self.out("|---|---:|---:|---:|---|")
        for name, bearer, token, floor, floor_is in cases:
            with override_settings(CHANNELS_BEARER=bearer):

                async def ours(token: str = token) -> None:
                    async def receive() -> dict[str, Any]:
                        return {"type": "websocket.connect"}

                    async def send(message: dict[str, Any]) -> None:
                        raise AssertionError(f"refused: {message}")

                    await middleware(scope_for(token), receive, send)

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

    def jwks_public_jwk(self) -> dict[str, Any]:
        from tests.support.keys import RSA_KEY_1, RSA_KID_1, public_jwk

        return public_jwk(RSA_KEY_1, RSA_KID_1)

    # -- 3. memory --

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
                config = Config(label, name, source or "-", self.jwt if source else None)
                client = config.client(server.port)

                async def run() -> tuple[int, int, int, Counter[str]]:
                    await load(client, 0.3, 10)  # warm-up
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

    # -- 4. revocation --

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
                    Config("revokee", server, "subprotocol", self.revokee_jwt).client(servers[server].port, REVOKEE)
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
        ok = count == n and codes.get(4403, 0) == n and last < 1.0
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
            f"SQLite {__import__('sqlite3').sqlite_version}"
        )
        self.out()

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
            for section in (self.handshakes, self.inprocess, self.memory, self.revocation):
                try:
                    section()
                except Exception:
                    # A broken section is reported, and the others still run.
                    self.failures_total += 1
                    self.out(f"**{section.__name__} failed:**")
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
