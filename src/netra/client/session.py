"""The HTTP half of the client: one ``httpx.AsyncClient``, the credentials, and the one
place a refused credential is renewed or reported."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from netra.client.backoff import Backoff
from netra.client.errors import ApiError, AuthenticationError, ConnectionLost
from netra.client.models import Json, Tokens

TokensSaved = Callable[[Tokens], None]
"""Told every new pair of tokens (after a sign-in or a refresh), to keep them."""


class Session:
    """Credentials and HTTP calls. A signed-in session's access token is renewed with its
    refresh token once the server says it expired (one refresh at a time: presenting a spent
    refresh token would end the session); an API key is sent as it is."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None,
        tokens: Tokens | None,
        on_tokens: TokensSaved | None,
        timeout: float,
        reconnect_timeout: float,
    ) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.tokens = tokens
        self._on_tokens = on_tokens
        self._reconnect_timeout = reconnect_timeout
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout)
        self._refreshing = asyncio.Lock()

    @property
    def bearer(self) -> str:
        """What goes after ``Bearer``: the API key, or the current access token."""
        if self.api_key is not None:
            return self.api_key
        if self.tokens is None:
            raise AuthenticationError("not signed in: call login() or give an API key")
        return self.tokens.access_token

    async def login(self, email: str, password: str) -> Tokens:
        body = await self._call("POST", "/auth/login", {"email": email, "password": password})
        self._store(Tokens.from_json(body))
        assert self.tokens is not None
        return self.tokens

    async def refresh(self, stale: str) -> None:
        """Renew the access token ``stale`` (unless another call renewed it meanwhile);
        ``AuthenticationError`` when there is nothing to renew it with, or it was refused."""
        async with self._refreshing:
            if self.tokens is None or self.tokens.access_token != stale:
                return
            if self.api_key is not None or self.tokens.refresh_token is None:
                raise AuthenticationError("the credentials were refused and cannot be renewed")
            body = await self._call(
                "POST", "/auth/refresh", {"refresh_token": self.tokens.refresh_token}
            )
            self._store(Tokens.from_json(body))

    async def request(
        self,
        method: str,
        path: str,
        body: Json | None = None,
        *,
        params: dict[str, Any] | None = None,
        retry: bool = True,
    ) -> Any:
        """The JSON answer of an authenticated call (None for ``204``). With ``retry`` (a
        request that may be repeated: reads, cancel, decisions) a server that cannot be
        reached is tried again with backoff, up to the reconnect bound."""
        stale = self.bearer
        try:
            return await self._call(method, path, body, params=params, retry=retry)
        except AuthenticationError as exc:
            if exc.code != "token_expired":
                raise
        await self.refresh(stale)
        return await self._call(method, path, body, params=params, retry=retry)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        body: Json | None,
        *,
        params: dict[str, Any] | None = None,
        retry: bool = False,
    ) -> Any:
        headers = {} if path.startswith("/auth/") else {"Authorization": f"Bearer {self.bearer}"}
        backoff = Backoff()
        deadline = asyncio.get_running_loop().time() + self._reconnect_timeout
        while True:
            try:
                response = await self._http.request(
                    method, path, json=body, params=params, headers=headers
                )
                break
            except httpx.TransportError as exc:
                if not retry:
                    raise ConnectionLost(f"{method} {path}: {exc!r}") from exc
                if asyncio.get_running_loop().time() > deadline:
                    raise ConnectionLost(f"{self.url} unreachable: {exc!r}") from exc
                await asyncio.sleep(backoff.next_delay())
        if response.status_code == 204:
            return None
        if response.is_success:
            return response.json()
        code, message = _error(response)
        if response.status_code == 401:
            raise AuthenticationError(message, code)
        retry_after = response.headers.get("Retry-After")
        raise ApiError(
            response.status_code, code, message, float(retry_after) if retry_after else None
        )

    def _store(self, tokens: Tokens) -> None:
        self.tokens = tokens
        if self._on_tokens is not None:
            self._on_tokens(tokens)


def _error(response: httpx.Response) -> tuple[str, str]:
    try:
        error = response.json()["error"]
        return str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        return f"http_{response.status_code}", response.text[:200]
