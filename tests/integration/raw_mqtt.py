# SPDX-License-Identifier: Apache-2.0
"""A tiny raw-socket MQTT client for tests that need exact bytes on the wire: limits,
malformed packets, thousands of connections, a subscriber that never acknowledges.

Real clients (paho, mosquitto_pub) hide what these tests look at: whether a packet came at
all, the exact reason byte of a DISCONNECT, a socket closed without a word. So this module
only builds frames, cuts a byte stream into frames, and parses the few packets a broker
sends (CONNACK, DISCONNECT, PUBLISH, SUBACK, UNSUBACK, the acks) just enough to check them.

- Builders (`connect`, `subscribe`, `publish`, `ack`, `pingreq`, `disconnect`, ...) return
  the bytes of one whole frame for MQTT 3.1 (version 3), 3.1.1 (4) or 5.0 (5).
- `FrameParser` turns received bytes into `Packet`s; it never blocks, so a selector loop
  over thousands of sockets can use it too.
- `RawClient` is one blocking socket with a receive buffer. Every read is bounded by a
  deadline (`DEFAULT_TIMEOUT` unless given) and raises `Closed` when the broker closes
  the connection (EOF or reset), `TimeoutError` when nothing happens in time.
"""
import errno
import os
import socket
import struct
import time
from dataclasses import dataclass, field

# The bound on every wait, in seconds, shared with ferrymq_harness.
DEFAULT_TIMEOUT = float(os.environ.get("FERRYMQ_TEST_TIMEOUT", "10"))

# Control packet types (MQTT 5.0 table 2-1; 1..14 are the same in 3.1 and 3.1.1).
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

TYPE_NAMES = {
    1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL",
    7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK",
    12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH",
}

# Protocol name and level per version [MQTT-3.1.2-1, MQTT-3.1.2-2]; 3.1 says "MQIsdp".
PROTOCOLS = {3: (b"MQIsdp", 3), 4: (b"MQTT", 4), 5: (b"MQTT", 5)}

# MQTT 5.0 property identifiers used by the tests, and the wire type of every property.
PAYLOAD_FORMAT_INDICATOR = 0x01
MESSAGE_EXPIRY_INTERVAL = 0x02
SESSION_EXPIRY_INTERVAL = 0x11
ASSIGNED_CLIENT_IDENTIFIER = 0x12
REASON_STRING = 0x1F
RECEIVE_MAXIMUM = 0x21
TOPIC_ALIAS_MAXIMUM = 0x22
MAXIMUM_QOS = 0x24
USER_PROPERTY = 0x26
MAXIMUM_PACKET_SIZE = 0x27

_BYTE, _U16, _U32, _VBI, _UTF8, _BINARY, _PAIR = range(7)
PROPERTY_TYPES = {
    0x01: _BYTE, 0x02: _U32, 0x03: _UTF8, 0x08: _UTF8, 0x09: _BINARY, 0x0B: _VBI,
    0x11: _U32, 0x12: _UTF8, 0x13: _U16, 0x15: _UTF8, 0x16: _BINARY, 0x17: _BYTE,
    0x18: _U32, 0x19: _BYTE, 0x1A: _UTF8, 0x1C: _UTF8, 0x1F: _UTF8, 0x21: _U16,
    0x22: _U16, 0x23: _U16, 0x24: _BYTE, 0x25: _BYTE, 0x26: _PAIR, 0x27: _U32,
    0x28: _BYTE, 0x29: _BYTE, 0x2A: _BYTE,
}

# Reason codes the tests name (MQTT 5.0 2.4).
SUCCESS = 0x00
MALFORMED_PACKET = 0x81
PROTOCOL_ERROR = 0x82
UNSUPPORTED_PROTOCOL_VERSION = 0x84
CLIENT_IDENTIFIER_NOT_VALID = 0x85
PACKET_TOO_LARGE = 0x95


class Closed(Exception):
    """The broker closed the connection; `how` is "eof" or "reset"."""

    def __init__(self, how, packets=()):
        super().__init__(f"connection closed by the broker ({how})")
        self.how = how
        self.packets = list(packets)  # packets received before the close, if collected


class ProtocolViolation(AssertionError):
    """The broker sent bytes that are not the packet a test expected."""


# --- encoding -------------------------------------------------------------------------------


def varint(value):
    """The variable byte integer encoding of `value` (MQTT 1.5.5)."""
    out = bytearray()
    while True:
        byte = value % 128
        value //= 128
        if value:
            byte |= 0x80
        out.append(byte)
        if not value:
            return bytes(out)


def u16(value):
    return struct.pack(">H", value)


def u32(value):
    return struct.pack(">I", value)


def string(value):
    """A UTF-8 string or binary data field: two-byte length, then the bytes."""
    data = value.encode() if isinstance(value, str) else bytes(value)
    return u16(len(data)) + data


def fixed_header(first_byte, remaining_length):
    """Just the fixed header of a frame, e.g. to announce a body that never comes."""
    return bytes([first_byte]) + varint(remaining_length)


def frame(first_byte, body):
    """One whole frame: first byte, remaining length, body."""
    return fixed_header(first_byte, len(body)) + body


def properties(props=None):
    """A 5.0 property block with its length. `props` maps an identifier to a value, or is a
    list of (identifier, value) pairs when an identifier repeats (user properties)."""
    items = list(props.items()) if isinstance(props, dict) else list(props or [])
    body = bytearray()
    for ident, value in items:
        kind = PROPERTY_TYPES[ident]
        body.append(ident)
        if kind == _BYTE:
            body.append(value)
        elif kind == _U16:
            body += u16(value)
        elif kind == _U32:
            body += u32(value)
        elif kind == _VBI:
            body += varint(value)
        elif kind in (_UTF8, _BINARY):
            body += string(value)
        else:
            body += string(value[0]) + string(value[1])
    return varint(len(body)) + bytes(body)


def connect(client_id, version=4, clean=True, keep_alive=60, props=None, will=None,
            username=None, password=None):
    """A CONNECT frame. `will` is (topic, payload, qos, retain) when given; `props` are the
    5.0 CONNECT properties (ignored before 5.0)."""
    name, level = PROTOCOLS[version]
    flags = 0x02 if clean else 0x00
    payload = string(client_id)
    if will is not None:
        topic, message, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        if version == 5:
            payload += properties()
        payload += string(topic) + string(message)
    if username is not None:
        flags |= 0x80
        payload += string(username)
    if password is not None:
        flags |= 0x40
        payload += string(password)
    header = string(name) + bytes([level, flags]) + u16(keep_alive)
    if version == 5:
        header += properties(props)
    return frame(0x10, header + payload)


def publish(topic, payload=b"", qos=0, packet_id=None, version=4, retain=False, dup=False,
            props=None):
    """A PUBLISH frame; QoS 1 and 2 need a `packet_id`."""
    first = 0x30 | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = string(topic)
    if qos:
        body += u16(packet_id)
    if version == 5:
        body += properties(props)
    data = payload.encode() if isinstance(payload, str) else bytes(payload)
    return frame(first, body + data)


def publish_size(topic, payload_length, qos=0, version=4):
    """The total frame size of a PUBLISH built by publish() without properties."""
    remaining = 2 + len(topic.encode()) + (2 if qos else 0) + (1 if version == 5 else 0)
    remaining += payload_length
    return 1 + len(varint(remaining)) + remaining


def payload_length_for(topic, total, qos=0, version=4):
    """The payload length that makes a PUBLISH built by publish() exactly `total` bytes."""
    length = total - publish_size(topic, 0, qos, version)
    while length > 0 and publish_size(topic, length, qos, version) > total:
        length -= 1
    if publish_size(topic, length, qos, version) != total:
        raise ValueError(f"no PUBLISH on {topic!r} is exactly {total} bytes")
    return length


def subscribe(packet_id, filters, version=4, props=None):
    """A SUBSCRIBE frame; `filters` is a list of (filter, options) where options is the QoS
    byte (plus the 5.0 option bits)."""
    body = u16(packet_id)
    if version == 5:
        body += properties(props)
    for topic_filter, options in filters:
        body += string(topic_filter) + bytes([options])
    return frame(0x82, body)


def unsubscribe(packet_id, filters, version=4):
    body = u16(packet_id)
    if version == 5:
        body += properties()
    for topic_filter in filters:
        body += string(topic_filter)
    return frame(0xA2, body)


def ack(packet_type, packet_id, version=4, reason=SUCCESS):
    """PUBACK, PUBREC, PUBREL or PUBCOMP for `packet_id` (PUBREL carries flags 0010)."""
    first = (packet_type << 4) | (0x02 if packet_type == PUBREL else 0)
    body = u16(packet_id)
    if version == 5 and reason != SUCCESS:
        body += bytes([reason])
    return frame(first, body)


def pingreq():
    return b"\xc0\x00"


def disconnect(version=4, reason=SUCCESS, props=None):
    if version == 5 and (reason != SUCCESS or props):
        return frame(0xE0, bytes([reason]) + properties(props))
    return b"\xe0\x00"


# --- decoding -------------------------------------------------------------------------------


def decode_varint(data, pos):
    """Reads a variable byte integer at `pos`; returns (value, next pos), or (None, pos) if
    `data` ends first. Raises ProtocolViolation past four bytes."""
    value = 0
    for i in range(4):
        if pos + i >= len(data):
            return None, pos
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos + i + 1
    raise ProtocolViolation(f"remaining length longer than 4 bytes: {bytes(data[pos:pos + 5])!r}")


def decode_properties(data, pos):
    """Reads a 5.0 property block at `pos`; returns ({id: value}, next pos). User properties
    are collected as a list of pairs under USER_PROPERTY."""
    length, pos = decode_varint(data, pos)
    if length is None or pos + length > len(data):
        raise ProtocolViolation(f"property length past the end: {bytes(data)!r}")
    end = pos + length
    props = {}
    while pos < end:
        ident = data[pos]
        pos += 1
        kind = PROPERTY_TYPES.get(ident)
        if kind is None:
            raise ProtocolViolation(f"unknown property 0x{ident:02X} in {bytes(data)!r}")
        if kind == _BYTE:
            value, pos = data[pos], pos + 1
        elif kind == _U16:
            value, pos = struct.unpack_from(">H", data, pos)[0], pos + 2
        elif kind == _U32:
            value, pos = struct.unpack_from(">I", data, pos)[0], pos + 4
        elif kind == _VBI:
            value, pos = decode_varint(data, pos)
        else:
            count = 2 if kind == _PAIR else 1
            parts = []
            for _ in range(count):
                (size,) = struct.unpack_from(">H", data, pos)
                raw = bytes(data[pos + 2 : pos + 2 + size])
                parts.append(raw if kind == _BINARY else raw.decode())
                pos += 2 + size
            value = tuple(parts) if kind == _PAIR else parts[0]
        if kind == _PAIR:
            props.setdefault(ident, []).append(value)
        else:
            props[ident] = value
    if pos != end:
        raise ProtocolViolation(f"property value past the property length: {bytes(data)!r}")
    return props, end


@dataclass
class Packet:
    """One received frame: its type, the flag bits and the bytes after the fixed header."""

    type: int
    flags: int
    body: bytes
    raw: bytes  # the whole frame, for error messages

    @property
    def name(self):
        return TYPE_NAMES.get(self.type, f"type {self.type}")

    def __repr__(self):
        return f"<{self.name} {self.raw.hex()}>"


@dataclass
class Connack:
    session_present: bool
    reason: int  # the 5.0 reason code, or the 3.1/3.1.1 return code
    properties: dict = field(default_factory=dict)


@dataclass
class Publish:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool
    packet_id: int = None
    properties: dict = field(default_factory=dict)


@dataclass
class Disconnect:
    reason: int
    properties: dict = field(default_factory=dict)


@dataclass
class Suback:
    packet_id: int
    reasons: list
    properties: dict = field(default_factory=dict)


def _expect_type(packet, packet_type):
    if packet.type != packet_type:
        raise ProtocolViolation(f"expected {TYPE_NAMES[packet_type]}, got {packet!r}")


def parse_connack(packet, version):
    """CONNACK in the given version's layout: 3.1/3.1.1 have exactly two bytes."""
    _expect_type(packet, CONNACK)
    body = packet.body
    if version != 5:
        if len(body) != 2:
            raise ProtocolViolation(f"3.1.1 CONNACK must have 2 bytes: {packet!r}")
        return Connack(bool(body[0] & 1), body[1])
    if len(body) < 3:
        raise ProtocolViolation(f"5.0 CONNACK too short: {packet!r}")
    props, end = decode_properties(body, 2)
    if end != len(body):
        raise ProtocolViolation(f"trailing bytes in CONNACK: {packet!r}")
    return Connack(bool(body[0] & 1), body[1], props)


def parse_disconnect(packet):
    """A 5.0 DISCONNECT: no body means reason 0x00 [MQTT-3.14.2.1]."""
    _expect_type(packet, DISCONNECT)
    body = packet.body
    if not body:
        return Disconnect(SUCCESS)
    props = {}
    if len(body) > 1:
        props, _ = decode_properties(body, 1)
    return Disconnect(body[0], props)


def parse_publish(packet, version):
    _expect_type(packet, PUBLISH)
    body = packet.body
    qos = (packet.flags >> 1) & 3
    (topic_length,) = struct.unpack_from(">H", body, 0)
    topic = bytes(body[2 : 2 + topic_length]).decode()
    pos = 2 + topic_length
    packet_id = None
    if qos:
        (packet_id,) = struct.unpack_from(">H", body, pos)
        pos += 2
    props = {}
    if version == 5:
        props, pos = decode_properties(body, pos)
    return Publish(topic, bytes(body[pos:]), qos, bool(packet.flags & 1),
                   bool(packet.flags & 8), packet_id, props)


def parse_suback(packet, version):
    """SUBACK or UNSUBACK: packet id, (5.0) properties, one reason per filter."""
    if packet.type not in (SUBACK, UNSUBACK):
        raise ProtocolViolation(f"expected SUBACK or UNSUBACK, got {packet!r}")
    body = packet.body
    (packet_id,) = struct.unpack_from(">H", body, 0)
    pos = 2
    props = {}
    if version == 5:
        props, pos = decode_properties(body, pos)
    return Suback(packet_id, list(body[pos:]), props)


def parse_ack(packet):
    """PUBACK/PUBREC/PUBREL/PUBCOMP: (packet id, reason); no reason byte means success."""
    (packet_id,) = struct.unpack_from(">H", packet.body, 0)
    reason = packet.body[2] if len(packet.body) > 2 else SUCCESS
    return packet_id, reason


class FrameParser:
    """Cuts a byte stream into Packets. feed() takes what arrived and returns every frame
    now complete; a partial frame waits for the next feed()."""

    def __init__(self):
        self._buffer = bytearray()

    def feed(self, data):
        self._buffer += data
        packets = []
        while len(self._buffer) >= 2:
            length, pos = decode_varint(self._buffer, 1)
            if length is None or len(self._buffer) < pos + length:
                break
            raw = bytes(self._buffer[: pos + length])
            del self._buffer[: pos + length]
            packets.append(Packet(raw[0] >> 4, raw[0] & 0x0F, raw[pos:], raw))
        return packets

    @property
    def pending(self):
        """Bytes of a partial frame not yet returned."""
        return len(self._buffer)


# --- a blocking client ----------------------------------------------------------------------


class RawClient:
    """One TCP connection to the broker speaking `version` (3, 4 or 5) byte by byte. The
    caller decides every packet; nothing is acknowledged or answered automatically."""

    def __init__(self, sock, version=4, timeout=DEFAULT_TIMEOUT):
        self.sock = sock
        self.version = version
        self.timeout = timeout
        self._parser = FrameParser()
        self._ready = []  # parsed packets not yet returned
        self._next_packet_id = 0

    @classmethod
    def open(cls, address, version=4, timeout=DEFAULT_TIMEOUT, rcvbuf=None):
        """Connects to `address` ((host, port)); `rcvbuf` sets SO_RCVBUF before the
        handshake, so the window the broker sees is small from the start."""
        sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET,
                             socket.SOCK_STREAM)
        try:
            if rcvbuf is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.settimeout(timeout)
            sock.connect(address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except BaseException:
            sock.close()
            raise
        return cls(sock, version, timeout)

    # --- bytes ---

    def send(self, data):
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    def _receive(self, deadline):
        """Reads once from the socket, waiting until `deadline` at most."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no packet from the broker in time")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no packet from the broker in time") from None
        except ConnectionResetError:
            raise Closed("reset") from None
        except OSError as e:
            if e.errno in (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED):
                raise Closed("reset") from None
            raise
        if not data:
            raise Closed("eof")
        self._ready += self._parser.feed(data)

    def read_packet(self, timeout=None):
        """The next packet, waiting `timeout` seconds (default: the client's) at most.
        Raises Closed if the broker closes first, TimeoutError if nothing comes."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self._ready:
            self._receive(deadline)
        return self._ready.pop(0)

    def expect(self, packet_type, timeout=None):
        """The next packet, which must be of `packet_type`."""
        packet = self.read_packet(timeout)
        _expect_type(packet, packet_type)
        return packet

    def read_until_closed(self, timeout=None):
        """Every packet the broker sends until it closes the connection; returns (packets,
        how) with how "eof" or "reset". Raises TimeoutError (with `.packets`) if the
        connection is still open after `timeout` seconds."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        packets = []
        while True:
            packets += self._ready
            self._ready = []
            try:
                self._receive(deadline)
            except Closed as e:
                return packets + self._ready, e.how
            except TimeoutError as e:
                e.packets = packets + self._ready
                raise

    def sync(self, timeout=None):
        """A barrier: sends PINGREQ and returns every packet that arrives before the
        PINGRESP. The broker writes to one connection in order, so anything it sent before
        handling the PINGREQ is in the list."""
        self.send(pingreq())
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        before = []
        while True:
            packet = self.read_packet(max(deadline - time.monotonic(), 0.001))
            if packet.type == PINGRESP:
                return before
            before.append(packet)

    # --- MQTT ---

    def connect(self, client_id, clean=True, keep_alive=60, props=None, will=None,
                expect_reason=SUCCESS, **kwargs):
        """Sends CONNECT in the client's version and returns the parsed CONNACK, which must
        carry `expect_reason` (None: any)."""
        self.send(connect(client_id, self.version, clean, keep_alive, props, will, **kwargs))
        ack = parse_connack(self.expect(CONNACK), self.version)
        if expect_reason is not None and ack.reason != expect_reason:
            raise ProtocolViolation(f"CONNACK reason 0x{ack.reason:02X}, expected "
                                    f"0x{expect_reason:02X}")
        return ack

    def packet_id(self):
        self._next_packet_id = self._next_packet_id % 65535 + 1
        return self._next_packet_id

    def subscribe(self, topic_filter, qos=0, props=None):
        """Subscribes to one filter and returns the SUBACK, which must grant `qos`."""
        packet_id = self.packet_id()
        self.send(subscribe(packet_id, [(topic_filter, qos)], self.version, props))
        ack = parse_suback(self.expect(SUBACK), self.version)
        if ack.packet_id != packet_id or ack.reasons != [qos]:
            raise ProtocolViolation(f"SUBACK {ack} for packet id {packet_id}, QoS {qos}")
        return ack

    def publish(self, topic, payload=b"", qos=0, retain=False, props=None, wait_ack=True):
        """Publishes; for QoS 1 and 2 (with `wait_ack`) waits for the PUBACK or runs the
        PUBREC/PUBREL/PUBCOMP exchange. Returns the packet id (None for QoS 0)."""
        packet_id = self.packet_id() if qos else None
        self.send(publish(topic, payload, qos, packet_id, self.version, retain, props=props))
        if qos and wait_ack:
            self.wait_publish_ack(packet_id, qos)
        return packet_id

    def wait_publish_ack(self, packet_id, qos):
        if qos == 1:
            got, _ = parse_ack(self.expect(PUBACK))
        else:
            got, _ = parse_ack(self.expect(PUBREC))
            self.send(ack(PUBREL, packet_id, self.version))
            got, _ = parse_ack(self.expect(PUBCOMP))
        if got != packet_id:
            raise ProtocolViolation(f"ack for packet id {got}, expected {packet_id}")

    def disconnect(self, reason=SUCCESS, props=None):
        """Sends DISCONNECT and waits for the broker to close the connection."""
        self.send(disconnect(self.version, reason, props))
        packets, _ = self.read_until_closed()
        if packets:
            raise ProtocolViolation(f"packets after DISCONNECT: {packets}")
        self.close()

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
