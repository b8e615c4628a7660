"""Placeholder until the Panel bridge lands: dashboard paths answer 503."""

from __future__ import annotations


class DashboardBridge:
    def __init__(self, **kwargs) -> None:
        self.kwargs = kwargs

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1013})
            return
        await send({"type": "http.response.start", "status": 503, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"dashboard not available yet"})

    async def close(self) -> None:
        return None
