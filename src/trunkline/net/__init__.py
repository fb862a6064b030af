"""asyncio adapters around the sans-IO cores: SIP endpoint, RTP legs, pacer, WebSocket media."""
