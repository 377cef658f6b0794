"""Revocations reach every socket of the session, on every instance.

When a session ends here (logout, a refresh token used twice, a disabled account), the
sessions service forgets it and tells this relay, which closes the session's sockets on this
instance at once and tells the other instances over the bus (a ``revoked`` notice): they
forget the session too and close its sockets there. A user whose roles or tier changed is
forgotten everywhere the same way (an ``account`` notice), so that user's next socket reads
the rights as stored, and the sockets it holds read them again (roles, tier, limit
overrides), so their next message is admitted under them.

A notice may be lost (Redis away, or a pub/sub connection replaced at that moment): another
instance then trusts what it knows of the session for new sockets for at most
``auth.session_cache_s``, and the sockets it holds live on until their token expires
(``auth.access_token_ttl_s``); an API key's socket, which no token bounds, reads its
session again that often (``WebSocketEndpoint``) and closes then.
"""

from __future__ import annotations

import asyncio
import logging

from netra.auth.sessions import Revocation, SessionService
from netra.events.bus import EventBus, Notice
from netra.realtime.connection import CLOSE_POLICY
from netra.realtime.manager import UnifiedWebSocketManager

log = logging.getLogger(__name__)


class RevocationRelay:
    """Wires the sessions service, the sockets of this instance and the bus together."""

    def __init__(
        self, sessions: SessionService, sockets: UnifiedWebSocketManager, bus: EventBus
    ) -> None:
        self._sessions = sessions
        self._sockets = sockets
        self._bus = bus
        self._rereads: set[asyncio.Task[None]] = set()
        sessions.on_revoke(self._revoked)
        sessions.on_account_change(self._account_changed)
        bus.on_notice(self._heard)

    async def _revoked(self, revocation: Revocation) -> None:
        self._close(revocation.user_id, revocation.session_id, revocation.reason)
        await self._bus.notify(
            Notice("revoked", revocation.user_id, None, session_id=revocation.session_id)
        )

    async def _account_changed(self, user_id: str) -> None:
        await self._reread(user_id)  # here first: the change's answer finds them changed
        await self._bus.notify(Notice("account", user_id, None))

    def _heard(self, notice: Notice) -> None:
        """A notice from any instance (this one's own too: handling it twice is harmless)."""
        if notice.user_id is None:
            return
        if notice.kind == "revoked":
            self._sessions.forget(notice.user_id, notice.session_id)
            self._close(notice.user_id, notice.session_id, "revoked")
        elif notice.kind == "account":
            self._sessions.forget(notice.user_id)
            task = asyncio.get_running_loop().create_task(self._reread(notice.user_id))
            self._rereads.add(task)
            task.add_done_callback(self._rereads.discard)

    async def _reread(self, user_id: str) -> None:
        """The user's sockets here take on its rights as stored now."""
        for connection in self._sockets.sockets_of(user_id):
            try:
                current = await self._sessions.reread(connection.ctx)
            except Exception:  # the database is away: the socket keeps what it had
                log.warning("rereading the rights of a socket of %s failed", user_id, exc_info=True)
                return
            if current is not None:
                connection.ctx = current

    def _close(self, user_id: str, session_id: str | None, reason: str) -> None:
        text = f"session ended: {reason}"
        if session_id is None:
            self._sockets.close_user(user_id, CLOSE_POLICY, text)
        else:
            self._sockets.close_session(session_id, CLOSE_POLICY, text)
