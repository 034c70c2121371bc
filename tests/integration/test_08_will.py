# SPDX-License-Identifier: Apache-2.0
"""08 will: the Will Message (spec 3.1.2.5 to 3.1.2.7, 3.1.3.2, 3.14.4) is published when the
network connection ends without a normal DISCONNECT: a dropped socket, a keep-alive
timeout, a protocol error, 5.0 DISCONNECT 0x04; and not after a normal DISCONNECT. Its QoS
and retain flag are honoured."""
import time

import pytest

from mqtt_helpers import (CONNACK, DISCONNECT, PUBLISH, V311, V5, VERSIONS, Prop, Reason, Will,
                          connect_packet, flush)
from mqtt_helpers import clients  # noqa: F401 (fixture, used by name)


def _watcher(broker, clients, version, qos=2):
    w = clients.connected(broker, "c08-watcher", version)
    w.subscribe("c08/will/#", qos)
    return w


def _will_client(broker, clients, version, will, **kwargs):
    c = clients.raw(broker, version)
    c.connect("c08-mortal", will=will, **kwargs)
    return c


@pytest.mark.parametrize("version", VERSIONS)
def test_will_on_socket_drop_MQTT_3_1_2_8(broker, clients, version):
    """[MQTT-3.1.2-8] A connection closed by the network (the client drops its socket
    without DISCONNECT) publishes the will, with its topic and payload."""
    watcher = _watcher(broker, clients, version)
    c = _will_client(broker, clients, version, Will("c08/will/drop", b"dropped", qos=1))
    c.drop()
    p = watcher.receive()
    assert (p.topic, p.payload, p.qos, p.retain) == ("c08/will/drop", b"dropped", 1, False)


@pytest.mark.parametrize("version", VERSIONS)
def test_will_on_keepalive_timeout_MQTT_3_1_2_8(broker, clients, version):
    """[MQTT-3.1.2-8], [MQTT-3.1.2-24] A client that goes silent past 1.5 x keep-alive is
    disconnected and its will published (here a retained one, which is also stored)."""
    watcher = _watcher(broker, clients, version)
    c = _will_client(broker, clients, version,
                     Will("c08/will/silent", b"timed out", qos=1, retain=True), keepalive=1)
    c.expect_closed(timeout=4)
    p = watcher.receive(timeout=4)
    assert (p.topic, p.payload, p.qos) == ("c08/will/silent", b"timed out", 1)
    late = clients.connected(broker, "c08-late", version)
    late.subscribe("c08/will/silent", 1)
    assert [(q.payload, q.retain) for q in late.barrier()] == [(b"timed out", True)]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("garbage", [
    pytest.param(b"\x00\x00", id="reserved-type-0"),
    pytest.param(b"\x20\x02\x00\x00", id="CONNACK-from-client"),
    pytest.param(b"\x80\x06\x00\x01\x00\x01\x78\x00", id="SUBSCRIBE-bad-flags"),
])
def test_will_on_protocol_error_MQTT_4_8_0_1(broker, clients, version, garbage):
    """A protocol violation after CONNECT closes the connection (5.0: DISCONNECT with a
    reason >= 0x80 first [MQTT-4.13.1-1]), and a connection the server closes for an
    error publishes the will [MQTT-3.1.2-8]."""
    watcher = _watcher(broker, clients, version)
    c = _will_client(broker, clients, version, Will("c08/will/error", b"broken", qos=1))
    c.send(garbage)
    packets = c.expect_closed()
    if version == V5:
        assert [p.type for p in packets] == [DISCONNECT] and packets[0].reason >= 0x80, packets
    else:
        assert packets == []
    p = watcher.receive()
    assert (p.topic, p.payload) == ("c08/will/error", b"broken")


@pytest.mark.parametrize("version", VERSIONS)
def test_no_will_on_normal_disconnect_MQTT_3_1_2_10(broker, clients, version):
    """[MQTT-3.1.2-10], [MQTT-3.14.4-3] After a normal DISCONNECT (5.0 reason 0x00) the
    will is deleted, not published."""
    watcher = _watcher(broker, clients, version)
    c = _will_client(broker, clients, version, Will("c08/will/polite", b"not sent", qos=1))
    assert c.disconnect() == []
    pub = clients.connected(broker, "c08-pub", version)
    pub.publish("c08/will/marker", b"marker", qos=1)
    flush(pub)
    assert [p.topic for p in watcher.barrier()] == ["c08/will/marker"]


def test_v5_disconnect_with_will_message_MQTT_3_14_4_3(broker, clients):
    """5.0 spec 3.14.2.1: DISCONNECT with reason 0x04 (Disconnect with Will Message) closes
    normally but publishes the will."""
    watcher = _watcher(broker, clients, V5)
    c = _will_client(broker, clients, V5, Will("c08/will/asked", b"on purpose", qos=1))
    assert c.disconnect(reason=Reason.DISCONNECT_WITH_WILL) == []
    p = watcher.receive()
    assert (p.topic, p.payload) == ("c08/will/asked", b"on purpose")


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("will_qos,retain", [(0, False), (1, True), (2, False), (2, True)],
                         ids=["qos0", "qos1-retain", "qos2", "qos2-retain"])
def test_will_qos_and_retain_honoured_MQTT_3_1_2_14(broker, clients, version, will_qos,
                                                    retain):
    """[MQTT-3.1.2-14]..[MQTT-3.1.2-17] The will is published with its Will QoS (delivered
    at min(Will QoS, subscription QoS)) and, with Will Retain 1, as a retained message
    that a later subscriber gets with RETAIN 1; with Will Retain 0 nothing is stored.
    A live subscriber sees RETAIN 0 in 3.1.1 [MQTT-3.3.1-9]."""
    watcher = _watcher(broker, clients, version, qos=2)
    low = clients.connected(broker, "c08-low", version)
    low.subscribe("c08/will/#", 1)
    c = _will_client(broker, clients, version,
                     Will("c08/will/q", b"last words", qos=will_qos, retain=retain))
    c.drop()
    p = watcher.receive()
    assert (p.type, p.payload, p.qos, p.retain) == (PUBLISH, b"last words", will_qos, False), p
    p = low.receive()
    assert (p.payload, p.qos) == (b"last words", min(will_qos, 1)), p

    late = clients.connected(broker, "c08-late", version)
    late.subscribe("c08/will/q", 2)
    got = [(q.payload, q.qos, q.retain) for q in late.barrier()]
    assert got == ([(b"last words", will_qos, True)] if retain else []), got


def test_v5_will_properties_are_forwarded(broker, clients):
    """5.0 spec 3.1.3.2: will properties (Content Type, Response Topic, Correlation Data,
    User Property, Payload Format Indicator) are sent with the will message."""
    watcher = _watcher(broker, clients, V5)
    props = {
        Prop.PAYLOAD_FORMAT_INDICATOR: 1,
        Prop.CONTENT_TYPE: "text/plain",
        Prop.RESPONSE_TOPIC: "c08/reply",
        Prop.CORRELATION_DATA: b"\x01\x02",
        Prop.USER_PROPERTY: [("k", "v")],
    }
    c = _will_client(broker, clients, V5, Will("c08/will/props", b"w", qos=1,
                                                properties=props))
    c.drop()
    p = watcher.receive()
    for ident, value in props.items():
        assert p.properties.get(ident) == value, (hex(ident), p.properties)


def test_will_only_for_its_own_connection(broker, clients):
    """Each connection's own will is published, in 3.1.1 and 5.0 alike, and only when
    that connection drops."""
    watcher = _watcher(broker, clients, V311)
    a = clients.raw(broker, V311)
    a.connect("c08-a", will=Will("c08/will/a", b"a", qos=1))
    b = clients.raw(broker, V5)
    b.connect("c08-b", will=Will("c08/will/b", b"b", qos=1))
    b.drop()
    assert watcher.receive().topic == "c08/will/b"
    flush(a)
    assert watcher.barrier() == []


def test_v5_will_delay_cancelled_by_reconnect_MQTT_3_1_3_9(broker, clients):
    """5.0 [MQTT-3.1.3-9] If a new connection to the session is made before the Will Delay
    Interval has passed, the will is not sent."""
    watcher = _watcher(broker, clients, V5)
    c = _will_client(broker, clients, V5,
                     Will("c08/will/delayed", b"late", qos=1,
                          properties={Prop.WILL_DELAY_INTERVAL: 30}),
                     clean=False, session_expiry=300)
    c.drop()
    back = clients.raw(broker, V5)
    assert back.connect("c08-mortal", clean=False, session_expiry=300).session_present
    pub = clients.connected(broker, "c08-pub", V5)
    pub.publish("c08/will/marker", b"marker", qos=1)
    flush(pub)
    assert [p.topic for p in watcher.barrier()] == ["c08/will/marker"]


def test_v5_will_delay_publishes_after_the_delay_MQTT_3_1_3_9(broker, clients):
    """5.0 spec 3.1.3.2.2: the will is published when the Will Delay Interval (1 s) has
    passed without a reconnect, not at the close."""
    watcher = _watcher(broker, clients, V5)
    c = _will_client(broker, clients, V5,
                     Will("c08/will/delayed", b"late", qos=1,
                          properties={Prop.WILL_DELAY_INTERVAL: 1}),
                     clean=False, session_expiry=300)
    c.drop()
    start = time.monotonic()
    p = watcher.receive(timeout=4)
    elapsed = time.monotonic() - start
    assert p.payload == b"late"
    assert elapsed >= 0.8, f"will published {elapsed:.2f}s after the close, delay is 1 s"


def test_v5_will_qos_above_maximum_qos_is_refused_MQTT_3_2_2_12(start_broker, clients):
    """5.0 [MQTT-3.2.2-12] With limits.max_qos 1, a CONNECT whose Will QoS is 2 is refused
    with CONNACK 0x9B (QoS not supported) and the connection closed."""
    broker = start_broker(config_text="limits:\n  max_qos: 1\n")
    c = clients.raw(broker, V5)
    c.send(connect_packet("c08-greedy", V5, will=Will("c08/will/q2", b"x", qos=2)))
    ack = c.recv()
    assert (ack.type, ack.reason) == (CONNACK, Reason.QOS_NOT_SUPPORTED), ack
    assert c.expect_closed() == []
