"""The runtime: one process that answers calls on SIP and WebSocket and runs an app on each."""
