"""RFB over the two transports the tests use: the authenticated websocket and the raw unix socket."""

from __future__ import annotations

from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from jupyter_vnc.rfb import ByteStream


async def websocket_stream(
    url: str, token: str | None, headers: dict[str, str] | None = None
) -> tuple[ByteStream, WebSocketClientConnection]:
    """RFB over the desktop's websocket, authenticated by a token or by the given headers (cookies)."""
    headers = {**({"Authorization": f"token {token}"} if token else {}), **(headers or {})}
    conn = await websocket_connect(HTTPRequest(url, headers=headers), subprotocols=["binary"])

    async def recv() -> bytes:
        message = await conn.read_message()
        if message is None:
            return b""
        return message if isinstance(message, bytes) else message.encode()

    async def send(data: bytes) -> None:
        await conn.write_message(data, binary=True)

    return ByteStream(recv, send), conn
