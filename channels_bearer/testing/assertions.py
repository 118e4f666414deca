"""``assert_refused``: what a refusal with one RFC 6750 error looks like on the wire."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from channels.testing.websocket import WebsocketCommunicator

from channels_bearer.exceptions import BackendUnavailable, BearerError, InsufficientScope, InvalidRequest, InvalidToken, RateLimited, TooManySockets
from channels_bearer.refusal import challenge as challenge_for
from channels_bearer.testing.communicator import BearerCommunicator, DenialResponse

__all__ = ["REFUSALS", "Refusal", "assert_refused"]


@dataclass(frozen=True)
class Refusal:
    """How a refusal with one RFC 6750 ``error`` looks on the wire."""

    status: int
    close_code: int
    #: The ``WWW-Authenticate`` value of a denial response, ``None`` for none.
    challenge: str | None


def _refusal(error: type[BearerError]) -> Refusal:
    challenge = challenge_for(error()).decode("ascii") if error.challenge else None
    return Refusal(error.status, error.close_code, challenge)


#: ``error`` → expected refusal, as the refusals themselves define it
#: (channels_bearer.exceptions). ``None`` is "no token presented" (to a
#: consumer with ``bearer_required``), refused with a bare challenge.
REFUSALS: dict[str | None, Refusal] = {
    error.error: _refusal(error)
    for error in (InvalidRequest, InvalidToken, InsufficientScope, BackendUnavailable, TooManySockets, RateLimited)
}
REFUSALS[None] = Refusal(401, 4401, challenge_for(None).decode("ascii"))
_REASONS: dict[str | None, str | None] = {None: "token_required"}


def assert_refused(
    communicator_or_result: BearerCommunicator | WebsocketCommunicator | tuple[bool, Any],
    error: str | None = "invalid_token",
    *,
    code: int | None = None,
) -> None:
    """Assert that a handshake was refused with RFC 6750 ``error``.

    Give it the result of ``connect()`` or, better, the communicator, after
    ``connect()``:

    * a close before accept (Channels' communicator, daphne): the close code
      is ``REFUSALS[error].close_code`` (4400 ``invalid_request``, 4401
      ``invalid_token``, 4403 ``insufficient_scope``) and, with a
      ``BearerCommunicator``, the close reason is ``error``;
    * a denial response (``http_response=True``, like uvicorn): the HTTP
      status (400/401/403) and the ``WWW-Authenticate: Bearer error="..."``
      challenge;
    * ``REFUSAL = "close"``: the handshake is accepted and then closed: call
      ``await communicator.receive_close()`` first. The limits' refusals
      (``too_many_sockets``, ``rate_limited``: 429, or 4429 after accept) are
      always accepted-then-closed where there is no denial response.

    ``error=None``: refused because no token was presented (bare
    ``WWW-Authenticate: Bearer`` challenge, close code 4401). ``code`` pins
    another close code: a token of an inactive or deleted user is
    ``invalid_token`` with 4403 ("do not retry").

    With a ``BearerCommunicator`` it also asserts that the token appears in
    no close reason, header or body of the refusal.
    """
    if error not in REFUSALS:
        raise ValueError(f"Unknown error {error!r}; use one of {', '.join(map(repr, REFUSALS))}.")
    expected = REFUSALS[error]
    want_code = expected.close_code if code is None else code
    label = error or "no token (token_required)"
    if isinstance(communicator_or_result, tuple):
        _assert_result(communicator_or_result, expected, want_code, label, error)
        return
    communicator = communicator_or_result
    if not isinstance(communicator, BearerCommunicator):
        raise TypeError(
            "assert_refused() takes a BearerCommunicator or the (connected, code) tuple of connect(); "
            "Channels' own communicator records nothing: pass what its connect() returned."
        )
    if communicator.accepted is None:
        raise AssertionError("assert_refused(): await communicator.connect() first.")
    if communicator.denial is not None:
        _assert_denial(communicator.denial, expected, label, communicator.presented_token)
    else:
        _assert_close(communicator, want_code, label, error)


def _assert_result(result: tuple[bool, Any], expected: Refusal, want_code: int, label: str, error: str | None) -> None:
    connected, value = result
    assert not connected, f"Expected a refusal ({label}), but the handshake was accepted with subprotocol {value!r}."
    if isinstance(value, int) and value < 1000:
        assert value == expected.status, f"Expected HTTP {expected.status} ({label}), got HTTP {value}."
    else:
        assert value == want_code, _code_message(label, want_code, value, error)


def _assert_denial(denial: DenialResponse, expected: Refusal, label: str, token: str | None) -> None:
    assert denial.status == expected.status, f"Expected HTTP {expected.status} ({label}), got HTTP {denial.status}."
    challenge = denial.header("www-authenticate")
    # insufficient_scope may name the required scopes after the error (RFC 6750 section 3).
    assert challenge == expected.challenge or (
        challenge is not None and expected.challenge is not None and challenge.startswith(expected.challenge + ", scope=")
    ), f"Expected WWW-Authenticate {expected.challenge!r}, got {challenge!r}."
    if token:
        wire = denial.body + b"".join(name + b":" + value for name, value in denial.headers)
        assert token.encode("utf-8") not in wire, "The token appears in the denial response."


def _assert_close(communicator: BearerCommunicator, want_code: int, label: str, error: str | None) -> None:
    if communicator.accepted and communicator.close_code is None:
        raise AssertionError(
            f"Expected a refusal ({label}), but the handshake was accepted (subprotocol "
            f"{communicator.subprotocol!r}). With REFUSAL = 'close' the refusal follows the accept: "
            "await communicator.receive_close() before assert_refused()."
        )
    assert communicator.close_code == want_code, _code_message(label, want_code, communicator.close_code, error)
    reason = communicator.close_reason or ""
    token = communicator.presented_token
    if token:
        assert token not in reason, "The token appears in the close reason."
    want_reason = _REASONS.get(error, error)
    assert reason in ("", want_reason), f"Expected close reason {want_reason!r}, got {reason!r}."


def _code_message(label: str, want: int, got: Any, error: str | None) -> str:
    message = f"Expected close code {want} ({label}), got {got!r}."
    if error == "invalid_token" and got == 4403 and want == 4401:
        message += " A token of an inactive or deleted user closes with 4403: pass code=4403."
    if got == 1011:
        message += (
            " 1011 is temporarily_unavailable: a backend failed (see the channels_bearer log)."
            " Under pytest-django, does the test have database access (django_db(transaction=True))?"
        )
    return message


# -- Django TestCase -------------------------------------------------------------
