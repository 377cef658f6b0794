"""The interactive API docs load everything from the server itself, never from a CDN."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support import LiveServer

ASSET = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|url:\s*'([^']+)'""")
"""Every URL a docs page makes the browser fetch: scripts, styles, the icon, the schema."""


@pytest.mark.parametrize(("page", "kinds"), [("/docs", ("js", "css")), ("/redoc", ("js",))])
async def test_the_docs_pages_load_only_local_assets_and_each_is_served(
    server: LiveServer, http: httpx.AsyncClient, page: str, kinds: tuple[str, ...]
) -> None:
    response = await http.get(page)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    urls = [a or b for a, b in ASSET.findall(response.text)]
    assert "/openapi.json" in urls
    assert {url.rsplit(".", 1)[-1] for url in urls} >= {*kinds, "png"}
    assert "http" not in response.text.replace("http-equiv", "")  # no absolute URL at all
    for url in urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc and url.startswith("/"), url
        asset = await http.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 100, url
