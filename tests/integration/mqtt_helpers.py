# SPDX-License-Identifier: Apache-2.0
"""MQTT clients for the integration tests, with every wait bounded.

- RawClient: a small MQTT client over a plain socket that builds every packet byte by byte
  and parses what the broker sends, for what a real client library cannot express: exact
  bytes, a PUBLISH never acknowledged, a resent PUBLISH with DUP, a socket dropped between
  PUBREC and PUBREL, the CONNACK or DISCONNECT before a close, a frame that breaks a limit
  or the codec. Its barrier() and the module's flush() replace sleeps: a PINGREQ round trip
  shows the broker has handled everything sent before it, so "nothing was delivered" can be
  checked without waiting. It is also a context manager that closes its socket.
- Packet builders (`connect_packet`, `publish_packet`, ...) return the bytes of one whole
  packet for MQTT 3.1, 3.1.1 or 5.0; `parse_packet` parses one the broker sent, and
  `FrameParser` cuts a byte stream into parsed packets without blocking, so a selector loop
  over thousands of sockets can use it as well as RawClient.
- PahoClient: paho-mqtt 1.6 (Debian's python3-paho-mqtt, 1.x callback API) in a network
  thread that never reconnects behind the test's back; every wait is on a threading.Event,
  Condition or queue.Queue with a timeout.
- Fixture: `clients` makes both kinds and closes whatever a test left open.

Test modules import the fixture by name: `from mqtt_helpers import clients  # noqa: F401`.
"""
import queue
import select
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import pytest

import ferrymq_harness as harness

TIMEOUT = harness.DEFAULT_TIMEOUT

# Protocol levels, as sent in CONNECT.
V31 = 3
V311 = 4
V5 = 5

# The two versions most tests run for, as pytest parameters (ids are what -k selects).
VERSIONS = [pytest.param(V311, id="v311"), pytest.param(V5, id="v5")]

# Control packet types (spec 2.1.2).
CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
PUBREC = 5
PUBREL = 6
PUBCOMP = 7
SUBSCRIBE = 8
SUBACK = 9
UNSUBSCRIBE = 10
UNSUBACK = 11
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14
AUTH = 15

PACKET_NAMES = {
    CONNECT: "CONNECT", CONNACK: "CONNACK", PUBLISH: "PUBLISH", PUBACK: "PUBACK",
    PUBREC: "PUBREC", PUBREL: "PUBREL", PUBCOMP: "PUBCOMP", SUBSCRIBE: "SUBSCRIBE",
    SUBACK: "SUBACK", UNSUBSCRIBE: "UNSUBSCRIBE", UNSUBACK: "UNSUBACK", PINGREQ: "PINGREQ",
    PINGRESP: "PINGRESP", DISCONNECT: "DISCONNECT", AUTH: "AUTH",
}


class Prop:
    """MQTT 5.0 property identifiers (spec table 2-4)."""

    PAYLOAD_FORMAT_INDICATOR = 0x01
    MESSAGE_EXPIRY_INTERVAL = 0x02
    CONTENT_TYPE = 0x03
    RESPONSE_TOPIC = 0x08
    CORRELATION_DATA = 0x09
    SUBSCRIPTION_IDENTIFIER = 0x0B
    SESSION_EXPIRY_INTERVAL = 0x11
    ASSIGNED_CLIENT_IDENTIFIER = 0x12
    SERVER_KEEP_ALIVE = 0x13
    AUTHENTICATION_METHOD = 0x15
    AUTHENTICATION_DATA = 0x16
    REQUEST_PROBLEM_INFORMATION = 0x17
    WILL_DELAY_INTERVAL = 0x18
    REQUEST_RESPONSE_INFORMATION = 0x19
    RESPONSE_INFORMATION = 0x1A
    SERVER_REFERENCE = 0x1C
    REASON_STRING = 0x1F
    RECEIVE_MAXIMUM = 0x21
    TOPIC_ALIAS_MAXIMUM = 0x22
    TOPIC_ALIAS = 0x23
    MAXIMUM_QOS = 0x24
    RETAIN_AVAILABLE = 0x25
    USER_PROPERTY = 0x26
    MAXIMUM_PACKET_SIZE = 0x27
    WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28
    SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29
    SHARED_SUBSCRIPTION_AVAILABLE = 0x2A


# How each property is encoded: byte, two-byte and four-byte integers, variable byte
# integer, UTF-8 string, binary data, string pair.
_PROP_TYPES = {
    0x01: "u8", 0x02: "u32", 0x03: "str", 0x08: "str", 0x09: "bin", 0x0B: "varint",
    0x11: "u32", 0x12: "str", 0x13: "u16", 0x15: "str", 0x16: "bin", 0x17: "u8",
    0x18: "u32", 0x19: "u8", 0x1A: "str", 0x1C: "str", 0x1F: "str", 0x21: "u16",
    0x22: "u16", 0x23: "u16", 0x24: "u8", 0x25: "u8", 0x26: "pair", 0x27: "u32",
    0x28: "u8", 0x29: "u8", 0x2A: "u8",
}


class Reason:
    """MQTT 5.0 reason codes the tests check (spec 2.4)."""

    SUCCESS = 0x00
    GRANTED_QOS_1 = 0x01
    GRANTED_QOS_2 = 0x02
    DISCONNECT_WITH_WILL = 0x04
    NO_MATCHING_SUBSCRIBERS = 0x10
    NO_SUBSCRIPTION_EXISTED = 0x11
    CONTINUE_AUTHENTICATION = 0x18
    RE_AUTHENTICATE = 0x19
    UNSPECIFIED_ERROR = 0x80
    MALFORMED_PACKET = 0x81
    PROTOCOL_ERROR = 0x82
    UNSUPPORTED_PROTOCOL_VERSION = 0x84
    CLIENT_IDENTIFIER_NOT_VALID = 0x85
    BAD_USERNAME_OR_PASSWORD = 0x86
    NOT_AUTHORIZED = 0x87
    BAD_AUTHENTICATION_METHOD = 0x8C
    SERVER_SHUTTING_DOWN = 0x8B
    KEEP_ALIVE_TIMEOUT = 0x8D
    SESSION_TAKEN_OVER = 0x8E
    PACKET_IDENTIFIER_NOT_FOUND = 0x92
    PACKET_TOO_LARGE = 0x95
    QOS_NOT_SUPPORTED = 0x9B


# --- encoding -----------------------------------------------------------------------------


def varint(n):
    """A Variable Byte Integer (spec 1.5.5)."""
    out = bytearray()
    while True:
        byte = n % 128
        n //= 128
        if n:
            byte |= 0x80
        out.append(byte)
        if not n:
            return bytes(out)


def utf8(s):
    data = s.encode() if isinstance(s, str) else bytes(s)
    return struct.pack("!H", len(data)) + data


def binary(b):
    data = b.encode() if isinstance(b, str) else bytes(b)
    return struct.pack("!H", len(data)) + data


def properties(props):
    """The property block of a 5.0 packet: `props` maps identifier to value; a list value
    (user properties as (name, value) pairs, several subscription identifiers) repeats it."""
    body = bytearray()
    for ident, value in (props or {}).items():
        values = value if isinstance(value, list) else [value]
        for v in values:
            kind = _PROP_TYPES[ident]
            body += varint(ident)
            if kind == "u8":
                body += struct.pack("!B", v)
            elif kind == "u16":
                body += struct.pack("!H", v)
            elif kind == "u32":
                body += struct.pack("!I", v)
            elif kind == "varint":
                body += varint(v)
            elif kind == "str":
                body += utf8(v)
            elif kind == "bin":
                body += binary(v)
            else:
                body += utf8(v[0]) + utf8(v[1])
    return varint(len(body)) + bytes(body)


def fixed_header(first_byte, remaining_length):
    """Just the fixed header of a packet, e.g. to announce a body that never comes."""
    return bytes([first_byte]) + varint(remaining_length)


def frame(first_byte, body):
    """A whole control packet: fixed header (type and flags, remaining length) and body."""
    return fixed_header(first_byte, len(body)) + bytes(body)


@dataclass
class Will:
    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    properties: dict = field(default_factory=dict)  # 5.0 only


def connect_packet(client_id, version=V311, clean=True, keepalive=60, will=None,
                   props=None, username=None, password=None, protocol_name=None, flags=None):
    """CONNECT; `flags` replaces the computed Connect Flags byte (for malformed tests)."""
    name = protocol_name or ("MQIsdp" if version == V31 else "MQTT")
    computed = (0x02 if clean else 0)
    if will is not None:
        computed |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
    if username is not None:
        computed |= 0x80
    if password is not None:
        computed |= 0x40
    body = utf8(name) + bytes([version, computed if flags is None else flags])
    body += struct.pack("!H", keepalive)
    if version == V5:
        body += properties(props)
    body += utf8(client_id)
    if will is not None:
        if version == V5:
            body += properties(will.properties)
        body += utf8(will.topic) + binary(will.payload)
    if username is not None:
        body += utf8(username)
    if password is not None:
        body += binary(password)
    return frame(0x10, body)


def publish_packet(topic, payload=b"", qos=0, packet_id=None, retain=False, dup=False,
                   version=V311, props=None):
    first = 0x30 | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = utf8(topic)
    if qos:
        body += struct.pack("!H", packet_id)
    if version == V5:
        body += properties(props)
    body += payload.encode() if isinstance(payload, str) else bytes(payload)
    return frame(first, body)


def publish_size(topic, payload_length, qos=0, version=V311):
    """The total size of a PUBLISH built by publish_packet() without properties."""
    remaining = 2 + len(topic.encode()) + (2 if qos else 0) + (1 if version == V5 else 0)
    remaining += payload_length
    return 1 + len(varint(remaining)) + remaining


def payload_length_for(topic, total, qos=0, version=V311):
    """The payload length that makes a PUBLISH built by publish_packet() without
    properties exactly `total` bytes."""
    length = total - publish_size(topic, 0, qos, version)
    while length > 0 and publish_size(topic, length, qos, version) > total:
        length -= 1
    if publish_size(topic, length, qos, version) != total:
        raise ValueError(f"no PUBLISH on {topic!r} is exactly {total} bytes")
    return length


def ack_packet(ptype, packet_id, version=V311, reason=None):
    """PUBACK, PUBREC, PUBREL or PUBCOMP; PUBREL carries the required flags 0b0010."""
    first = (ptype << 4) | (0x02 if ptype == PUBREL else 0)
    body = struct.pack("!H", packet_id)
    if version == V5 and reason is not None:
        body += bytes([reason])
    return frame(first, body)


def subscribe_packet(packet_id, subscriptions, version=V311, props=None):
    """SUBSCRIBE; `subscriptions` is [(filter, options byte)] (QoS in the low two bits)."""
    body = struct.pack("!H", packet_id)
    if version == V5:
        body += properties(props)
    for topic_filter, options in subscriptions:
        body += utf8(topic_filter) + bytes([options])
    return frame(0x82, body)


def unsubscribe_packet(packet_id, filters, version=V311, props=None):
    body = struct.pack("!H", packet_id)
    if version == V5:
        body += properties(props)
    for topic_filter in filters:
        body += utf8(topic_filter)
    return frame(0xA2, body)


def disconnect_packet(version=V311, reason=None, props=None):
    body = b""
    if version == V5 and (reason is not None or props):
        body = bytes([reason or 0])
        if props:
            body += properties(props)
    return frame(0xE0, body)


def free_ports(n):
    """`n` loopback ports the kernel just handed out, for configuration files (which cannot
    say port 0); the broker binds them right after."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def auth_packet(reason, props=None):
    """A 5.0 AUTH packet (spec 3.15) with `reason` and properties."""
    return frame(0xF0, bytes([reason]) + properties(props or {}))


PINGREQ_PACKET = b"\xc0\x00"


# --- decoding -----------------------------------------------------------------------------


class _Reader:
    def __init__(self, data):
        self.data = bytes(data)
        self.pos = 0

    def left(self):
        return len(self.data) - self.pos

    def take(self, n):
        assert self.left() >= n, f"truncated packet: need {n} bytes, {self.left()} left"
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack("!H", self.take(2))[0]

    def u32(self):
        return struct.unpack("!I", self.take(4))[0]

    def varint(self):
        value, shift = 0, 0
        for _ in range(4):
            byte = self.u8()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
        raise AssertionError("Variable Byte Integer longer than 4 bytes")

    def binary(self):
        return self.take(self.u16())

    def utf8(self):
        return self.binary().decode("utf-8")

    def rest(self):
        return self.take(self.left())

    def properties(self):
        """A property block as {identifier: value}; user properties and subscription
        identifiers as lists. A repeated single-valued property fails the test: the
        spec calls that a Protocol Error."""
        length = self.varint()
        block = _Reader(self.take(length))
        props = {}
        while block.left():
            ident = block.varint()
            kind = _PROP_TYPES.get(ident)
            assert kind is not None, f"unknown property identifier 0x{ident:02X}"
            if kind == "u8":
                value = block.u8()
            elif kind == "u16":
                value = block.u16()
            elif kind == "u32":
                value = block.u32()
            elif kind == "varint":
                value = block.varint()
            elif kind == "str":
                value = block.utf8()
            elif kind == "bin":
                value = block.binary()
            else:
                value = (block.utf8(), block.utf8())
            if ident in (Prop.USER_PROPERTY, Prop.SUBSCRIPTION_IDENTIFIER):
                props.setdefault(ident, []).append(value)
            else:
                assert ident not in props, f"property 0x{ident:02X} sent twice"
                props[ident] = value
        return props


@dataclass
class Packet:
    """One packet from the broker. The fields a packet type has are filled in; `reason` is
    the CONNACK return or reason code, an ack's or DISCONNECT's reason code (0 when the
    5.0 short form omits it)."""

    type: int
    flags: int
    raw: bytes  # the whole packet, fixed header included
    session_present: bool = None
    reason: int = None
    properties: dict = field(default_factory=dict)
    topic: str = None
    payload: bytes = None
    qos: int = 0
    dup: bool = False
    retain: bool = False
    packet_id: int = None
    reasons: list = None  # SUBACK and UNSUBACK

    @property
    def name(self):
        return PACKET_NAMES.get(self.type, f"type {self.type}")

    def __repr__(self):
        if self.type == PUBLISH:
            return (f"PUBLISH(topic={self.topic!r}, payload={self.payload!r}, qos={self.qos}, "
                    f"dup={int(self.dup)}, retain={int(self.retain)}, id={self.packet_id}, "
                    f"props={self.properties})")
        return f"{self.name}({self.raw.hex(' ')})"


def parse_packet(raw, version):
    """Parses one whole packet received in protocol `version`."""
    header = _Reader(raw)
    first = header.u8()
    header.varint()
    r = _Reader(header.rest())
    p = Packet(type=first >> 4, flags=first & 0x0F, raw=bytes(raw))
    v5 = version == V5
    if p.type == CONNACK:
        flags = r.u8()
        assert flags & 0xFE == 0, f"reserved CONNACK flags set [MQTT-3.2.2-1]: {p.raw.hex()}"
        p.session_present = bool(flags & 1)
        p.reason = r.u8()
        if v5:
            # Properties are mandatory in 5.0; the one exception is the 3.1.1-form refusal
            # (return code 1) of a protocol level the broker does not accept [MQTT-3.1.2-2].
            assert r.left() or p.reason == 0x01, f"5.0 CONNACK without properties: {p.raw.hex()}"
            if r.left():
                p.properties = r.properties()
    elif p.type == PUBLISH:
        p.dup = bool(p.flags & 0x08)
        p.qos = (p.flags >> 1) & 0x03
        p.retain = bool(p.flags & 0x01)
        p.topic = r.utf8()
        if p.qos:
            p.packet_id = r.u16()
        if v5:
            p.properties = r.properties()
        p.payload = r.rest()
    elif p.type in (PUBACK, PUBREC, PUBREL, PUBCOMP):
        expected_flags = 0x02 if p.type == PUBREL else 0
        assert p.flags == expected_flags, f"bad fixed header flags: {p.raw.hex()}"
        p.packet_id = r.u16()
        p.reason = r.u8() if v5 and r.left() else 0
        if v5 and r.left():
            p.properties = r.properties()
    elif p.type in (SUBACK, UNSUBACK):
        p.packet_id = r.u16()
        if v5:
            p.properties = r.properties()
        p.reasons = list(r.rest())
    elif p.type in (DISCONNECT, AUTH):
        p.reason = r.u8() if r.left() else 0
        if v5 and r.left():
            p.properties = r.properties()
    assert r.left() == 0 or p.type in (PUBLISH, SUBACK, UNSUBACK), \
        f"trailing bytes in {p.name}: {p.raw.hex()}"
    return p


def _split_frame(buffer):
    """Length of the first whole packet in `buffer`, or None if it is still incomplete."""
    value, shift = 0, 0
    for i in range(1, min(len(buffer), 5)):
        byte = buffer[i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            total = 1 + i + value
            return total if len(buffer) >= total else None
        shift += 7
    assert len(buffer) < 5, f"malformed remaining length from the broker: {bytes(buffer[:5]).hex()}"
    return None


class FrameParser:
    """Cuts the byte stream of one connection in protocol `version` into parsed Packets. It
    never blocks: bytes go into `buffer` (or feed()), and a partial packet stays there until
    the rest arrives."""

    def __init__(self, version=V311):
        self.version = version
        self.buffer = bytearray()

    def next_packet(self):
        """Takes the first whole packet out of the buffer and parses it; None if there is
        none yet."""
        length = _split_frame(self.buffer)
        if length is None:
            return None
        raw = bytes(self.buffer[:length])
        del self.buffer[:length]
        return parse_packet(raw, self.version)

    def feed(self, data):
        """Adds received bytes and returns every packet now complete."""
        self.buffer += data
        return list(iter(self.next_packet, None))


class ConnectionClosed(AssertionError):
    """The broker closed the connection while the test waited for a packet."""


class WaitTimeout(AssertionError):
    """Nothing the test waited for came from the broker within the bounded wait.
    RawClient.expect_closed() sets `packets` to what did come before the deadline."""

    packets = ()


# --- the raw client -----------------------------------------------------------------------


class RawClient:
    """One TCP connection to the broker, spoken to byte by byte. Every wait is bounded by
    `timeout` (or the per-call one). Packets read while waiting for another kind are kept
    and returned, in order, by the next recv(). A context manager: leaving it closes the
    socket."""

    def __init__(self, broker, version=V311, timeout=TIMEOUT, index=0, rcvbuf=None):
        self.broker = broker
        self.version = version
        self.timeout = timeout
        if rcvbuf is None:
            self.sock = broker.connect(index, timeout=timeout)
        else:
            # A fixed receive buffer (set before connecting, which also turns off the
            # kernel's autotuning) makes a client that stops reading block the broker soon.
            host, port = broker.addresses[index]
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self.sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
                self.sock.settimeout(timeout)
                self.sock.connect((host, port))
            except BaseException:
                self.sock.close()
                raise
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.frames = FrameParser(version)
        self.stash = deque()
        self.closed_by_peer = None  # "eof" or "reset" once the broker has closed
        self.next_id = 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # --- bytes --------------------------------------------------------------------------

    def send(self, data):
        """Writes all of `data`; a broker that stops reading fails it after the timeout."""
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    def _read_some(self, deadline, what):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WaitTimeout(f"timed out waiting for {what}")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise WaitTimeout(f"timed out waiting for {what}") from None
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
            self.closed_by_peer = "reset"
            return b""
        if not data:
            self.closed_by_peer = "eof"
        return data

    def _next_frame(self, deadline, what):
        while (p := self.frames.next_packet()) is None:
            if self.closed_by_peer:
                raise ConnectionClosed(f"the broker closed the connection while the test "
                                       f"waited for {what}")
            self.frames.buffer += self._read_some(deadline, what)
        return p

    def recv(self, timeout=None, what="a packet"):
        """The next packet from the broker."""
        if self.stash:
            return self.stash.popleft()
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        return self._next_frame(deadline, what)

    def expect(self, ptype, packet_id=None, timeout=None):
        """Waits for a packet of type `ptype` (and `packet_id`), keeping any other packet
        for later recv() calls."""
        wanted = PACKET_NAMES[ptype] + (f" id {packet_id}" if packet_id is not None else "")
        for i, p in enumerate(self.stash):
            if p.type == ptype and (packet_id is None or p.packet_id == packet_id):
                del self.stash[i]
                return p
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while True:
            p = self._next_frame(deadline, wanted)
            if p.type == ptype and (packet_id is None or p.packet_id == packet_id):
                return p
            self.stash.append(p)

    def expect_closed(self, timeout=None):
        """Waits until the broker closes the connection and returns the packets it sent
        first (kept ones included); `closed_by_peer` then says how it closed. On timeout
        the WaitTimeout carries the packets received so far."""
        packets = list(self.stash) + self.frames.feed(b"")
        self.stash.clear()
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while not self.closed_by_peer:
            try:
                packets += self.frames.feed(self._read_some(deadline, "the connection to close"))
            except WaitTimeout as e:
                e.packets = packets
                raise
        assert not self.frames.buffer, \
            f"partial packet before the close: {self.frames.buffer.hex()}"
        return packets

    def assert_open_for(self, seconds):
        """Checks that for `seconds` the broker neither sends anything nor closes."""
        assert not self.stash and not self.frames.buffer, f"unread packets: {list(self.stash)}"
        end = time.monotonic() + seconds
        while (remaining := end - time.monotonic()) > 0:
            readable, _, _ = select.select([self.sock], [], [], remaining)
            if readable:
                data = self.sock.recv(65536, socket.MSG_PEEK)
                raise AssertionError(
                    "the connection was closed" if not data else f"unexpected bytes {data.hex()}")

    def close(self):
        self.sock.close()

    drop = close  # closing without DISCONNECT is what a dropped connection looks like

    # --- MQTT ---------------------------------------------------------------------------

    def new_id(self):
        packet_id = self.next_id
        self.next_id = self.next_id % 65535 + 1
        return packet_id

    def connect(self, client_id, clean=True, keepalive=60, will=None, props=None,
                session_expiry=None, expect_reason=0, **kwargs):
        """Sends CONNECT and returns the CONNACK; asserts its code unless expect_reason is
        None. A 5.0 `session_expiry` is sent as the Session Expiry Interval property."""
        if session_expiry is not None and self.version == V5:
            props = dict(props or {})
            props[Prop.SESSION_EXPIRY_INTERVAL] = session_expiry
        self.send(connect_packet(client_id, self.version, clean=clean, keepalive=keepalive,
                                 will=will, props=props, **kwargs))
        ack = self.expect(CONNACK)
        if expect_reason is not None:
            assert ack.reason == expect_reason, f"CONNACK {ack.raw.hex(' ')}"
        return ack

    def subscribe(self, topic_filter, qos=0, packet_id=None, props=None, options=0):
        """One SUBSCRIBE; `topic_filter` may be a list of (filter, options byte). Returns
        the SUBACK."""
        subscriptions = (topic_filter if isinstance(topic_filter, list)
                         else [(topic_filter, qos | options)])
        packet_id = packet_id or self.new_id()
        self.send(subscribe_packet(packet_id, subscriptions, self.version, props))
        ack = self.expect(SUBACK, packet_id)
        assert len(ack.reasons) == len(subscriptions), ack
        return ack

    def unsubscribe(self, filters, packet_id=None):
        filters = [filters] if isinstance(filters, str) else filters
        packet_id = packet_id or self.new_id()
        self.send(unsubscribe_packet(packet_id, filters, self.version))
        return self.expect(UNSUBACK, packet_id)

    def publish(self, topic, payload=b"", qos=0, retain=False, packet_id=None, dup=False,
                props=None, complete=True):
        """Sends a PUBLISH; with `complete` finishes its QoS 1/2 flow. Returns the packet
        id (QoS > 0) or None."""
        if qos and packet_id is None:
            packet_id = self.new_id()
        self.send(publish_packet(topic, payload, qos, packet_id, retain, dup, self.version,
                                 props))
        if complete and qos == 1:
            self.expect(PUBACK, packet_id)
        elif complete and qos == 2:
            self.expect(PUBREC, packet_id)
            self.send(ack_packet(PUBREL, packet_id, self.version))
            self.expect(PUBCOMP, packet_id)
        return packet_id

    def ack(self, p):
        """Finishes the receiver's side of a QoS 1/2 PUBLISH from the broker."""
        if p.qos == 1:
            self.send(ack_packet(PUBACK, p.packet_id, self.version))
        elif p.qos == 2:
            self.send(ack_packet(PUBREC, p.packet_id, self.version))
            self.expect(PUBREL, p.packet_id)
            self.send(ack_packet(PUBCOMP, p.packet_id, self.version))

    def receive(self, ack=True, timeout=None):
        """The next packet, which must be a PUBLISH; acknowledged unless ack=False."""
        p = self.recv(timeout, what="a PUBLISH")
        assert p.type == PUBLISH, f"expected a PUBLISH, got {p}"
        if ack:
            self.ack(p)
        return p

    def barrier(self, ack=True):
        """Sends PINGREQ and returns the PUBLISHes that arrive before the PINGRESP (acked
        unless ack=False), all within one timeout. The broker handles one connection's packets
        in order, so this collects everything it had sent this client before reading the
        PINGREQ."""
        self.send(PINGREQ_PACKET)
        deadline = time.monotonic() + self.timeout
        got = []
        while True:
            p = self.recv(max(deadline - time.monotonic(), 0), what="PINGRESP")
            if p.type == PINGRESP:
                return got
            assert p.type == PUBLISH, f"expected PUBLISH or PINGRESP, got {p}"
            if ack:
                self.ack(p)
            got.append(p)

    def disconnect(self, reason=None, props=None):
        """Sends DISCONNECT and waits for the broker to close; returns what it sent first."""
        self.send(disconnect_packet(self.version, reason, props))
        return self.expect_closed()


def flush(*raw_clients):
    """Waits until the broker has handled everything the given clients sent so far (one
    PINGREQ round trip each). PUBLISHes that arrive meanwhile are kept for recv()."""
    for c in raw_clients:
        c.send(PINGREQ_PACKET)
        c.expect(PINGRESP)


# --- paho ---------------------------------------------------------------------------------


class PahoClient:
    """A paho-mqtt client whose network loop never reconnects (reconnect_on_failure=False),
    so a closed connection stays closed. Received messages go to `messages` (a queue.Queue
    of paho MQTTMessage)."""

    def __init__(self, broker, client_id="", version=V311, clean=True, keepalive=60,
                 session_expiry=None, timeout=TIMEOUT, tls=None):
        import paho.mqtt.client as mqtt
        from paho.mqtt.properties import Properties
        from paho.mqtt.packettypes import PacketTypes

        self._mqtt = mqtt
        self._Properties = Properties
        self._PacketTypes = PacketTypes
        self.broker = broker
        self.version = version
        self.clean = clean
        self.keepalive = keepalive
        self.session_expiry = session_expiry
        self.timeout = timeout
        protocol = {V31: mqtt.MQTTv31, V311: mqtt.MQTTv311, V5: mqtt.MQTTv5}[version]
        if version == V5:
            self.client = mqtt.Client(client_id=client_id, protocol=protocol,
                                      reconnect_on_failure=False)
        else:
            self.client = mqtt.Client(client_id=client_id, clean_session=clean,
                                      protocol=protocol, reconnect_on_failure=False)
        if tls is not None:
            # Keyword arguments of paho's tls_set(): ca_certs, certfile, keyfile.
            self.client.tls_set(**tls)
        self.messages = queue.Queue()
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.connack = None  # (reason code int, session present bool, properties)
        self.disconnect_reason = None  # int; for 5.0 a server DISCONNECT's reason code
        self.disconnect_properties = None  # 5.0: the properties of the server's DISCONNECT
        self._subacks = {}
        self._acks = threading.Condition()
        self._thread = None
        self.error = None  # an exception raised in the network thread
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = lambda client, userdata, msg: self.messages.put(msg)
        self.client.on_subscribe = self._on_subscribe

    # --- callbacks (network thread) -----------------------------------------------------

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        self.connack = (int(getattr(rc, "value", rc)), bool(flags.get("session present")),
                        properties)
        self.connected.set()

    def _on_disconnect(self, client, userdata, rc, properties=None):
        self.disconnect_reason = int(getattr(rc, "value", rc))
        self.disconnect_properties = properties
        self.disconnected.set()

    def _on_subscribe(self, client, userdata, mid, granted, properties=None):
        with self._acks:
            self._subacks[mid] = [int(getattr(g, "value", g)) for g in granted]
            self._acks.notify_all()

    def _run(self):
        try:
            self.client.loop_forever(timeout=0.05)
        except Exception as e:  # noqa: BLE001 - reported to the test by connect()
            self.error = e
        finally:
            # However the loop ended, the connection is unusable now.
            self.disconnected.set()

    # --- calls from the test ------------------------------------------------------------

    def connect(self, expect_reason=0):
        """Connects and waits for CONNACK; returns (reason code, session present)."""
        kwargs = {}
        if self.version == V5:
            kwargs["clean_start"] = self.clean
            if self.session_expiry is not None:
                props = self._Properties(self._PacketTypes.CONNECT)
                props.SessionExpiryInterval = self.session_expiry
                kwargs["properties"] = props
        self.client.connect(self.broker.host, self.broker.port, self.keepalive, **kwargs)
        # What loop_start() does, with our own target so an exception in the loop reaches
        # the test. paho checks `_thread` to let only the network thread write (else a
        # publish() from the test thread races it and can reorder packets).
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"paho-{self.client._client_id!r}")
        self.client._thread_terminate = False
        self.client._thread = self._thread
        self._thread.start()
        deadline = time.monotonic() + self.timeout
        while not self.connected.wait(0.02):
            # CONNACK and the close after a refusal can both land between the wait and
            # this check: paho reports them in order, so look at `connected` again.
            assert not self.disconnected.is_set() or self.connected.is_set(), \
                f"the connection ended before CONNACK: {self.error!r}"
            assert time.monotonic() < deadline, "no CONNACK within the timeout"
        reason, present, _ = self.connack
        if expect_reason is not None:
            assert reason == expect_reason, f"CONNACK reason {reason}"
        return reason, present

    def _wait_ack(self, table, mid, what):
        deadline = time.monotonic() + self.timeout
        with self._acks:
            while mid not in table:
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"no {what} within {self.timeout}s"
                self._acks.wait(remaining)
            return table.pop(mid)

    def subscribe(self, topic, qos=0):
        """Subscribes and returns the granted QoS / reason codes from SUBACK."""
        rc, mid = self.client.subscribe(topic, qos)
        assert rc == self._mqtt.MQTT_ERR_SUCCESS, rc
        return self._wait_ack(self._subacks, mid, "SUBACK")

    def publish(self, topic, payload=b"", qos=0, retain=False, wait=True):
        """Publishes; with `wait`, returns once the QoS flow is complete (or the QoS 0
        packet was written)."""
        info = self.client.publish(topic, payload, qos, retain)
        assert info.rc == self._mqtt.MQTT_ERR_SUCCESS, info.rc
        if wait:
            info.wait_for_publish(self.timeout)
            assert info.is_published(), f"publish to {topic} not complete in {self.timeout}s"
        return info

    def expect_message(self, timeout=None):
        try:
            return self.messages.get(timeout=timeout if timeout is not None else self.timeout)
        except queue.Empty:
            raise AssertionError("no message within the timeout") from None

    def expect_messages(self, count, timeout=None):
        """Exactly the next `count` messages, within one overall timeout."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        got = []
        while len(got) < count:
            remaining = deadline - time.monotonic()
            try:
                got.append(self.messages.get(timeout=max(remaining, 0)))
            except queue.Empty:
                raise AssertionError(f"{len(got)} of {count} messages within the "
                                     f"timeout") from None
        return got

    def wait_disconnected(self, timeout=None):
        assert self.disconnected.wait(timeout if timeout is not None else self.timeout), \
            "the connection did not end within the timeout"
        return self.disconnect_reason

    def disconnect(self):
        """Sends DISCONNECT and waits until the connection is gone."""
        self.client.disconnect()
        self.wait_disconnected()
        self.stop()

    def stop(self):
        """Ends the network thread (bounded); the connection is left as it is."""
        self.client._thread_terminate = True
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self.timeout)

    def close(self):
        """Teardown: a polite DISCONNECT if still connected, then the thread ends."""
        if self._thread is not None and not self.disconnected.is_set():
            self.client.disconnect()
            self.disconnected.wait(2)
        self.stop()
        sock = self.client.socket()
        if sock is not None:
            sock.close()


class ClientFactory:
    """The `clients` fixture: makes RawClient and PahoClient objects and closes every one
    when the test ends."""

    def __init__(self):
        self.made = []

    def raw(self, broker, version=V311, **kwargs):
        c = RawClient(broker, version, **kwargs)
        self.made.append(c)
        return c

    def paho(self, broker, client_id="", version=V311, connect=True, **kwargs):
        c = PahoClient(broker, client_id, version, **kwargs)
        self.made.append(c)
        if connect:
            c.connect()
        return c

    def connected(self, broker, client_id, version=V311, **kwargs):
        """A RawClient that has connected successfully (kwargs go to RawClient.connect)."""
        c = self.raw(broker, version)
        c.connect(client_id, **kwargs)
        return c

    def close_all(self):
        for c in reversed(self.made):
            try:
                c.close()
            except Exception:  # noqa: BLE001 - teardown of a client the test broke
                pass


@pytest.fixture
def clients():
    factory = ClientFactory()
    yield factory
    factory.close_all()


def persistent(version, clean=False):
    """RawClient.connect() arguments for a session that outlives the connection: Clean
    Session 0 in 3.1.1, a Session Expiry Interval of 300 s in 5.0 (with Clean Start 0
    unless `clean`; 3.1.1 has no way to start clean and persist, so `clean` starts clean
    and the session ends with the connection)."""
    return dict(clean=clean, session_expiry=300 if version == V5 else None)
