"""The HTTP API: health, live and recent calls (and, as the runtime grows, records and metrics)."""
