"""``manage.py bearer_token`` as a shell script runs it: a process, its exit status, its streams."""

from __future__ import annotations

from tests.support.servers import manage


def test_unknown_user_exit_status(server_env_base: dict[str, str]) -> None:
    # As a shell script sees it: non-zero exit, nothing on stdout.
    result = manage(server_env_base, "bearer_token", "no-such-user-anywhere", check=False)
    assert result.returncode != 0
    assert result.stdout == ""
    assert "--create" in result.stderr
