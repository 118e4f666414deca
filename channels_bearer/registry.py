"""This process' authenticated sockets, and the revocations it has heard of lately.

``BearerConsumerMixin`` registers each authenticated socket under its user and
its token id; a revocation, made here or heard from another process through
the channel layer (:mod:`channels_bearer.broadcast`), closes the registered
sockets it names.

A handshake takes a :meth:`~SocketRegistry.mark` before its token is looked
up. When its socket registers, a revocation heard since that mark that names
its user or token refuses it: a revocation that lands between the lookup and
the registration (the lookup read the row just before it was deleted) is not
lost. Revocations are remembered for ``RETENTION`` seconds, far longer than
any handshake takes.
"""

from __future__ import annotations

import threading
import time
import uuid
import weakref
from collections import OrderedDict, deque
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple, Protocol

__all__ = ["Revocation", "SocketRegistry", "registry", "user_key"]

#: ``type`` of the revocation messages sent between processes.
MESSAGE_TYPE = "channels_bearer.revocation"
#: Where the middleware leaves a handshake's mark for the consumer.
MARK_SCOPE_KEY = "channels_bearer.mark"


def user_key(user: Any) -> str:
    """How revocations name a user: its primary key as text (msgpack carries no UUIDs)."""
    return str(getattr(user, "pk", user))


def _new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Revocation:
    """One revocation: of every socket of a user, or of every socket opened with a token.

    ``close``: close the sockets it names (4403). ``invalidate``: the user or
    token row changed, so cached lookups of it must be dropped.
    """

    user: str | None = None
    token_id: str | None = None
    reason: str = "revoked"
    close: bool = True
    invalidate: bool = False
    #: The token's row was just created: only "unknown token" cache entries are wrong.
    created: bool = False
    #: Each process applies a revocation once, however it reaches it.
    id: str = field(default_factory=_new_id)
    #: When it was made (``time.time()``): the revocation latency metric.
    sent_at: float = field(default_factory=time.time)

    def again(self) -> Revocation:
        """The same revocation, to be applied anew (when the transaction commits)."""
        return replace(self, id=_new_id(), sent_at=time.time())

    def to_message(self) -> dict[str, Any]:
        return {
            "type": MESSAGE_TYPE,
            "id": self.id,
            "user": self.user,
            "token_id": self.token_id,
            "reason": self.reason,
            "close": self.close,
            "invalidate": self.invalidate,
            "created": self.created,
            "sent_at": self.sent_at,
        }

    @classmethod
    def from_message(cls, message: Any) -> Revocation | None:
        """The revocation a channel-layer message carries, or ``None`` for anything else."""
        if not isinstance(message, dict) or message.get("type") != MESSAGE_TYPE:
            return None
        user, token_id, reason, ident = (message.get(k) for k in ("user", "token_id", "reason", "id"))
        if not all(v is None or isinstance(v, str) for v in (user, token_id)):
            return None
        if user is None and token_id is None:
            return None
        if not isinstance(reason, str) or not isinstance(ident, str):
            return None
        return cls(
            user=user,
            token_id=token_id,
            reason=reason,
            close=message.get("close") is True,
            invalidate=message.get("invalidate") is True,
            created=message.get("created") is True,
            id=ident,
            # A sender from before the field: heard as sent now.
            sent_at=sent_at if isinstance(sent_at := message.get("sent_at"), float) else time.time(),
        )


class _Heard(NamedTuple):
    seq: int
    at: float
    user: str | None
    token_id: str | None


class RegisteredSocket(Protocol):
    def bearer_post_event(self, message: dict[str, Any]) -> None: ...


class SocketRegistry:
    """Thread-safe: sync consumers register from their own threads."""

    #: Seconds a revocation is remembered for handshakes still in flight.
    RETENTION = 120.0
    #: At most this many are remembered (a mass deactivation, say).
    MAX_HEARD = 100_000
    #: Ids of revocations already applied here, so each applies once.
    MAX_APPLIED = 10_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: dict[tuple[str, str], weakref.WeakSet[Any]] = {}
        self._heard: deque[_Heard] = deque()
        self._seq = 0
        #: Marks at or below this may have missed a forgotten revocation.
        self._forgotten_through = 0
        self._applied: OrderedDict[str, None] = OrderedDict()

    def mark(self) -> int:
        """Where a handshake starts; pass it to :meth:`register` once authenticated."""
        return self._seq

    def register(self, socket: RegisteredSocket, user: str | None, token_id: str | None, since: int) -> bool:
        """Register ``socket``; ``False`` (and not registered) if it was revoked since ``since``."""
        with self._lock:
            if self._revoked_since(since, user, token_id):
                return False
            for key in _keys(user, token_id):
                self._sockets.setdefault(key, weakref.WeakSet()).add(socket)
            return True

    def unregister(self, socket: RegisteredSocket, user: str | None, token_id: str | None) -> None:
        with self._lock:
            for key in _keys(user, token_id):
                members = self._sockets.get(key)
                if members is not None:
                    members.discard(socket)
                    if not members:
                        del self._sockets[key]

    def revoked_since(self, since: int, user: str | None, token_id: str | None) -> bool:
        with self._lock:
            return self._revoked_since(since, user, token_id)

    def first_time(self, revocation: Revocation) -> bool:
        """Whether ``revocation`` is new here (and from now on, not)."""
        with self._lock:
            if revocation.id in self._applied:
                return False
            self._applied[revocation.id] = None
            if len(self._applied) > self.MAX_APPLIED:
                self._applied.popitem(last=False)
            return True

    def record(self, revocation: Revocation) -> list[RegisteredSocket]:
        """Remember a closing revocation; return the sockets it names."""
        now = time.monotonic()
        with self._lock:
            self._seq += 1
            self._heard.append(_Heard(self._seq, now, revocation.user, revocation.token_id))
            while self._heard and (len(self._heard) > self.MAX_HEARD or self._heard[0].at < now - self.RETENTION):
                self._forgotten_through = self._heard.popleft().seq
            targets: set[Any] = set()
            for key in _keys(revocation.user, revocation.token_id):
                targets.update(self._sockets.get(key, ()))
            return list(targets)

    def count(self) -> int:
        """Registered sockets (each is under one user key or one token key, or both)."""
        with self._lock:
            return len({id(s) for members in self._sockets.values() for s in members})

    def _revoked_since(self, since: int, user: str | None, token_id: str | None) -> bool:
        if since < self._forgotten_through:
            # Older than anything remembered: it may have missed one.
            return True
        for heard in reversed(self._heard):
            if heard.seq <= since:
                break
            if (user is not None and heard.user == user) or (token_id is not None and heard.token_id == token_id):
                return True
        return False


def _keys(user: str | None, token_id: str | None) -> list[tuple[str, str]]:
    keys = []
    if user is not None:
        keys.append(("user", user))
    if token_id is not None:
        keys.append(("token", token_id))
    return keys


#: The registry of this process.
registry = SocketRegistry()
