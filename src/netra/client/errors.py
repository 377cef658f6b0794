"""What the client raises. One root, and the cause in each subclass's name::

ClientError                  anything this package raises on purpose
├── AuthenticationError      the server refused the credentials (401, socket closed 1008)
├── ApiError                 the server refused a request (any other 4xx/5xx, an error frame)
└── ConnectionLost           the server could not be reached again within the bound
"""

from __future__ import annotations


class ClientError(Exception):
    """The root of every error of ``netra.client``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AuthenticationError(ClientError):
    """The credentials were refused: a wrong password, a revoked or expired API key, a
    session that ended (``401``, or the socket closed with ``1008``) — and a refresh token,
    when there was one, could not renew them. Sign in again."""

    def __init__(self, message: str, code: str = "unauthenticated") -> None:
        super().__init__(message)
        self.code = code


class ApiError(ClientError):
    """The server refused a request or a frame: ``status`` (0 for an error frame), the
    error ``code`` (``not_found``, ``quota_exceeded``…) and, when the server gave one,
    ``retry_after`` seconds."""

    def __init__(
        self, status: int, code: str, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.retry_after = retry_after


class ConnectionLost(ClientError):
    """The server stayed unreachable for longer than the client's ``reconnect_timeout``."""
