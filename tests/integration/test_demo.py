"""The demo as a newcomer meets it (issue 12): ``python3 dev.py demo`` and its settings.

``dev.py demo`` is run as the README says, on free ports: with ``--oidc`` the
token it prints authenticates a script that sends no ``Origin``; a busy port
is one clear line, not a traceback. The demo's own settings (not the tests')
log each channels-bearer line once under daphne and uvicorn, in UTC.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests.support.handshake import connect_outcome
from tests.support.servers import ROOT, SERVER_KINDS, Server, free_port, manage, start_server, wait_for_port

pytestmark = pytest.mark.server


def dev_py(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "dev.py"), *args]


def dev_py_env() -> dict[str, str]:
    """dev.py as a user runs it, forbidden to install (a test installs nothing)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DJANGO_", "PIP_"))}
    env["CHANNELS_BEARER_NO_INSTALL"] = "1"
    return env


def test_a_busy_port_is_one_clear_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            dev_py("demo", "--port", str(port)), cwd=ROOT, env=dev_py_env(), capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"Port {port} on 127.0.0.1 is in use. Stop what runs there, or pick another: "
        f"python3 dev.py demo --port {port + 1}"
    ]


def test_the_matrix_names_a_missing_interpreter(tmp_path: Path) -> None:
    # A machine with no versioned Python on PATH and no pyenv.
    (tmp_path / "bin").mkdir()
    env = {**dev_py_env(), "PATH": str(tmp_path / "bin"), "PYENV_ROOT": str(tmp_path), "HOME": str(tmp_path)}
    result = subprocess.run(dev_py("test", "--all"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    for row in ("Python 3.11 (for py311-django52)", "Python 3.12 (for py312-django60)", "Python 3.13 (for py313-django61)"):
        assert row in result.stderr
    assert "not found on PATH nor in pyenv's versions" in result.stderr


@pytest.fixture(params=["RS256", "ES256"])
def oidc_demo(request: pytest.FixtureRequest) -> Iterator[tuple[int, str]]:
    """``dev.py demo --oidc``; with an ES256 provider too, which the demo's settings (no ALGORITHMS) take."""
    port, provider_port = free_port(), free_port()
    process = subprocess.Popen(
        dev_py("demo", "--port", str(port), "--oidc", "--provider-port", str(provider_port), "--oidc-algorithm", request.param),
        cwd=ROOT,
        env=dev_py_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        for line in process.stdout:
            lines.append(line)
            if "Ctrl-C stops the server" in line:
                break
        text = "".join(lines)
        assert f"http://127.0.0.1:{port}/" in text, text
        token = lines[[i for i, line in enumerate(lines) if "issued for 'carol'" in line][0] + 1].strip()
        assert jwt_header(token)["alg"] == request.param
        wait_for_port(port, process, "dev.py demo")
        yield port, token
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def jwt_header(token: str) -> dict[str, object]:
    import jwt

    return dict(jwt.get_unverified_header(token))


def test_the_oidc_demo_token_connects_a_script(oidc_demo: tuple[int, str]) -> None:
    port, token = oidc_demo

    async def whoami() -> dict[str, object]:
        # No Origin: a script, as the README's first example is.
        async with connect(f"ws://127.0.0.1:{port}/ws/whoami/", subprotocols=["access_token", token]) as ws:  # type: ignore[list-item]
            return dict(json.loads(await asyncio.wait_for(ws.recv(), 10)))

    frame = asyncio.run(whoami())
    assert frame["user"] == "carol"
    assert frame["backend"] == "channels_bearer.backends.JWKSBackend"


@pytest.fixture(scope="module")
def demo_servers(server_env_base: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    """daphne and uvicorn with the demo's own settings, as ``dev.py demo`` runs it."""
    env = {**server_env_base, "DJANGO_SETTINGS_MODULE": "testproject.settings"}
    logs = tmp_path_factory.mktemp("demo-logs")
    servers = {kind: start_server(kind, env, logs) for kind in SERVER_KINDS}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_the_demo_logs_each_line_once(kind: str, demo_servers: dict[str, Server]) -> None:
    server = demo_servers[kind]
    marker = f"/ws/whoami/once-{kind}/"
    outcome = asyncio.run(connect_outcome(server, marker, send_origin=False))
    assert outcome.status == 403
    deadline_lines: list[str] = []
    for _ in range(50):
        deadline_lines = [line for line in server.log().splitlines() if f"refused for {marker}" in line]
        if deadline_lines:
            break
        asyncio.run(asyncio.sleep(0.1))
    assert len(deadline_lines) == 1, server.log()


def test_the_demo_keeps_time_in_utc(server_env_base: dict[str, str]) -> None:
    env = {**server_env_base, "DJANGO_SETTINGS_MODULE": "testproject.settings"}
    out = manage(env, "shell", "-c", "from django.utils import timezone; print(timezone.get_current_timezone_name())")
    assert out.stdout.strip().splitlines()[-1] == "UTC"


def test_the_demo_database_file_is_ignored_by_git() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(Path("testproject") / "db.sqlite3")], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0
