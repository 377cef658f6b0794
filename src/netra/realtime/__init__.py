"""Realtime: the WebSocket endpoint, client frames, and the UnifiedWebSocketManager."""
