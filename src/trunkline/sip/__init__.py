"""Sans-IO SIP (RFC 3261): messages, parser, transactions, dialogs and call flows.

Nothing in this package imports asyncio, socket or time: it takes bytes and ``now`` and
returns events, bytes to send and timer deadlines.
"""
