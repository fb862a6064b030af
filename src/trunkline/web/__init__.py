"""Web pages the runtime serves: the browser phone (``GET /phone``)."""

from trunkline.web.phone import add_phone_routes

__all__ = ["add_phone_routes"]
