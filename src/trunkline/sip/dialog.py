"""Dialogs (RFC 3261 §12): the state two user agents share for the life of a call.

Theory of operation
-------------------
A dialog is identified by Call-ID, local tag and remote tag (§12). It is created by a
response to INVITE that carries a To tag: a 1xx makes it *early*, a 2xx *confirmed*
(§12.1). It remembers what every later request in the call needs:

* the local and remote URIs (our From/To values, tags included),
* the remote target (the peer's Contact; refreshed by re-INVITE, §12.2),
* the route set (Record-Route, reversed at the UAC, §12.1.2),
* the local CSeq (we increment it per request) and the remote CSeq (requests below it
  are out of order: 500, §12.2.2).

``create_request`` builds an in-dialog request exactly as §12.2.1.1 says, including the
strict-routing case (a first route without ``lr``). ``next_hop`` says where to send it
(§8.1.2, RFC 3263 without DNS: the host and port of the first Route, else of the remote
target). The dialog does no I/O and knows nothing about calls; ``call.py`` owns one.
"""

from __future__ import annotations

import enum

from trunkline.sip.errors import SipProtocolError, SipUsageError
from trunkline.sip.events import Peer
from trunkline.sip.headers import cseq_of, parse_name_addr, split_header_list, tag_of
from trunkline.sip.message import Headers, SipRequest, SipResponse
from trunkline.sip.uri import SipUri

DEFAULT_SIP_PORT = 5060  # RFC 3261 §19.1.2
DEFAULT_SIPS_PORT = 5061


class DialogState(enum.Enum):
    """RFC 3261 §12: a dialog is early (1xx with tag) or confirmed (2xx), then gone."""

    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


DialogKey = tuple[str, str, str]  # (Call-ID, local tag, remote tag)


def _uri_of(value: str) -> SipUri:
    """The URI inside a Contact/Route/Record-Route value."""
    return parse_name_addr(value).uri


def _values(msg: SipRequest | SipResponse, name: str) -> list[str]:
    out: list[str] = []
    for value in msg.headers.get_all(name):
        out.extend(v for v in split_header_list(value) if v)
    return out


def _contact_uri(msg: SipRequest | SipResponse) -> str | None:
    contacts = _values(msg, "Contact")
    if not contacts:
        return None
    return str(_uri_of(contacts[0]))


class Dialog:
    """One dialog's state (§12.1) and the in-dialog request builder (§12.2.1.1)."""

    __slots__ = (
        "call_id", "conn_id", "local_seq", "local_tag", "local_uri", "remote_seq",
        "remote_tag", "remote_target", "remote_uri", "route_set", "secure", "state",
        "transport",
    )  # fmt: skip

    def __init__(
        self,
        *,
        call_id: str,
        local_tag: str,
        remote_tag: str,
        local_uri: str,
        remote_uri: str,
        remote_target: str,
        route_set: list[str],
        local_seq: int | None,
        remote_seq: int | None,
        state: DialogState,
        transport: str,
        secure: bool = False,
        conn_id: int | None = None,
    ) -> None:
        self.call_id = call_id
        self.local_tag = local_tag
        self.remote_tag = remote_tag
        self.local_uri = local_uri  # our From (UAC) / To (UAS) value, with our tag
        self.remote_uri = remote_uri  # the peer's, with its tag when it sent one
        self.remote_target = remote_target
        self.route_set = route_set
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.state = state
        self.transport = transport
        self.secure = secure
        self.conn_id = conn_id  # the TCP connection the dialog's messages arrive on

    def __repr__(self) -> str:
        return f"<Dialog {self.call_id} {self.local_tag}/{self.remote_tag} {self.state.value}>"

    @property
    def key(self) -> DialogKey:
        return (self.call_id, self.local_tag, self.remote_tag)

    # --- creation (§12.1) -------------------------------------------------------------

    @classmethod
    def for_uas(cls, request: SipRequest, local_tag: str, transport: str) -> Dialog:
        """The UAS side, from the dialog-creating request and the tag we put in To (§12.1.1).

        The route set is the request's Record-Route in order; the remote target is its
        Contact; the remote CSeq is the request's; our CSeq starts empty.

        Raises:
            SipProtocolError(400): no Contact, or a malformed Contact/Record-Route.
        """
        target = _contact_uri(request)
        if target is None:
            # §8.1.1.8: a dialog-creating request MUST carry a Contact.
            raise SipProtocolError("Missing Contact in a dialog-creating request", 400)
        routes = _values(request, "Record-Route")
        for route in routes:
            _uri_of(route)  # validate now rather than when we first send a request
        seq, _ = cseq_of(request)
        to_value = request.headers.get("To") or ""
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=tag_of(request.headers.get("From") or "") or "",
            local_uri=f"{to_value};tag={local_tag}" if tag_of(to_value) is None else to_value,
            remote_uri=request.headers.get("From") or "",
            remote_target=target,
            route_set=routes,
            local_seq=None,
            remote_seq=seq,
            state=DialogState.EARLY,
            transport=transport,
            secure=request.uri.lower().startswith("sips:"),
        )

    @classmethod
    def for_uac(
        cls, request: SipRequest, response: SipResponse, conn_id: int | None = None
    ) -> Dialog:
        """The UAC side, from our INVITE and a 1xx/2xx that carries a To tag (§12.1.2).

        The route set is the response's Record-Route reversed; the remote target is its
        Contact; our CSeq is the INVITE's; the remote CSeq starts empty.

        Raises:
            SipProtocolError(400): no To tag, or a malformed Contact/Record-Route. A 2xx
                without Contact is accepted (remote target = Request-URI) since we must
                still ACK it.
        """
        to_value = response.headers.get("To") or ""
        remote_tag = tag_of(to_value)
        if remote_tag is None:
            raise SipProtocolError("Dialog-creating response has no To tag", 400)
        routes = list(reversed(_values(response, "Record-Route")))
        for route in routes:
            _uri_of(route)
        seq, _ = cseq_of(request)
        from_value = request.headers.get("From") or ""
        status = response.status
        return cls(
            call_id=request.call_id,
            local_tag=tag_of(from_value) or "",
            remote_tag=remote_tag,
            local_uri=from_value,
            remote_uri=to_value,
            remote_target=_contact_uri(response) or request.uri,
            route_set=routes,
            local_seq=seq,
            remote_seq=None,
            state=DialogState.CONFIRMED if 200 <= status < 300 else DialogState.EARLY,
            transport="tcp" if _via_transport(request) == "TCP" else "udp",
            secure=request.uri.lower().startswith("sips:"),
            conn_id=conn_id,
        )

    # --- updates -----------------------------------------------------------------------

    def confirm(self, response: SipResponse | None = None) -> None:
        """Early -> confirmed (§12.1.2: the 2xx's Record-Route and Contact win at the UAC)."""
        self.state = DialogState.CONFIRMED
        if response is not None:
            self.route_set = list(reversed(_values(response, "Record-Route")))
            self.refresh_target(response)

    def refresh_target(self, msg: SipRequest | SipResponse) -> None:
        """Adopt the Contact of a target refresh request or its 2xx (§12.2.1.2, §12.2.2)."""
        target = _contact_uri(msg)
        if target is not None:
            self.remote_target = target

    def check_remote_seq(self, request: SipRequest) -> None:
        """Accept the CSeq of an in-dialog request and remember it (§12.2.2).

        Raises:
            SipProtocolError(500): the CSeq is lower than the last one seen (out of order).
        """
        seq, _ = cseq_of(request)
        if self.remote_seq is not None and seq < self.remote_seq:
            raise SipProtocolError(f"CSeq {seq} is lower than {self.remote_seq}", 500)
        self.remote_seq = seq

    def next_seq(self) -> int:
        """Increment and return the local CSeq (§12.2.1.1)."""
        self.local_seq = 1 if self.local_seq is None else self.local_seq + 1
        return self.local_seq

    # --- in-dialog requests (§12.2.1.1) ---------------------------------------------------

    def create_request(
        self,
        method: str,
        *,
        via: str,
        contact: str | None = None,
        cseq: int | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        extra: list[tuple[str, str]] | None = None,
    ) -> SipRequest:
        """Build an in-dialog request.

        Args:
            method: the method. ACK and CANCEL reuse the INVITE's CSeq: pass ``cseq``.
            via: our Via value with a fresh branch.
            contact: our Contact, for target refresh requests (INVITE, §12.2.1.1).
            cseq: the CSeq number; default: the next local one.
            body, content_type: the body and its type.
            extra: more headers, appended in order.

        Raises:
            SipUsageError: the dialog has ended (ACK is still allowed).
        """
        if self.state is DialogState.TERMINATED and method != "ACK":
            # A 2xx that arrives after our BYE must still be ACKed (§13.2.2.4).
            raise SipUsageError(f"cannot send {method}: the dialog has ended")
        seq = self.next_seq() if cseq is None else cseq
        uri, routes = self._request_uri_and_routes()
        headers = Headers()
        headers.add("Via", via)
        headers.add("Max-Forwards", "70")
        for route in routes:
            headers.add("Route", route)
        headers.add("From", self.local_uri)
        headers.add("To", self.remote_uri)
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{seq} {method}")
        if contact is not None:
            headers.add("Contact", contact)
        for name, value in extra or ():
            headers.add(name, value)
        if content_type is not None:
            headers.add("Content-Type", content_type)
        return SipRequest(headers=headers, method=method, uri=uri, body=body)

    def _request_uri_and_routes(self) -> tuple[str, list[str]]:
        if not self.route_set:
            return self.remote_target, []
        first = _uri_of(self.route_set[0])
        if first.has_param("lr"):
            return self.remote_target, list(self.route_set)
        # Strict routing (§12.2.1.1, RFC 2543 proxies): the first route becomes the
        # Request-URI without the parameters a Request-URI may not carry; the remote
        # target goes last in Route.
        kept = tuple((n, v) for n, v in first.params if n not in ("method", "maddr", "ttl"))
        stripped = SipUri(first.scheme, first.user, first.host, first.port, first.password, kept)
        return str(stripped), [*self.route_set[1:], f"<{self.remote_target}>"]

    def next_hop(self) -> Peer:
        """Where in-dialog requests go: the first route, else the remote target (§8.1.2).

        The transport is the URI's ``transport`` parameter, else the dialog's own; over
        TCP ``conn_id`` names the connection the dialog's messages arrived on, so the
        adapter can reuse it (it connects to host:port when that connection is gone).
        """
        uri = _uri_of(self.route_set[0]) if self.route_set else SipUri.parse(self.remote_target)
        transport = (uri.param("transport") or self.transport).lower()
        host, port = uri.host_port
        if port is None:
            port = DEFAULT_SIPS_PORT if uri.scheme == "sips" else DEFAULT_SIP_PORT
        conn_id = self.conn_id if transport == "tcp" else None
        return Peer(transport, host, port, conn_id)


def _via_transport(request: SipRequest) -> str:
    via = request.headers.get("Via") or ""
    head = via.split(None, 1)[0] if via.strip() else ""
    return head.rsplit("/", 1)[-1].upper()
