# SPDX-License-Identifier: Apache-2.0
"""02 connect: CONNECT and CONNACK (spec 3.1, 3.2) as a client on a real socket sees them,
for MQTT 3.1, 3.1.1 and 5.0: accepted and refused connections, client identifiers, the
order of packets, the connect timeout and the 5.0 CONNACK properties."""
import time

import pytest

from mqtt_helpers import (CONNACK, DISCONNECT, PINGREQ_PACKET, PINGRESP, V31, V311, V5,
                          VERSIONS, Prop, Reason, Will, connect_packet, frame, publish_packet,
                          subscribe_packet)
from mqtt_helpers import free_ports
from mqtt_helpers import clients  # noqa: F401 (fixture, used by name)


@pytest.mark.parametrize("version", VERSIONS)
def test_connack_accepts_connect_MQTT_3_2_0_1(broker, clients, version):
    """[MQTT-3.2.0-1] The first packet the server sends is CONNACK; return code 0 / reason
    0x00, Session Present 0 for a clean session [MQTT-3.2.2-1]."""
    c = clients.raw(broker, version)
    c.send(connect_packet("c02-accept", version))
    ack = c.recv()
    assert ack.type == CONNACK, ack
    assert ack.reason == 0 and ack.session_present is False, ack
    if version == V311:
        assert ack.raw == b"\x20\x02\x00\x00"
    # The connection is usable: PINGREQ is answered.
    c.send(PINGREQ_PACKET)
    assert c.recv().type == PINGRESP


@pytest.mark.parametrize("version", VERSIONS)
def test_paho_connects(broker, clients, version):
    """A real client library connects, subscribes, publishes and receives."""
    client = clients.paho(broker, "c02-paho", version)
    assert client.connack[0] == 0
    client.subscribe("c02/paho", 1)
    client.publish("c02/paho", b"hello", qos=1)
    msg = client.expect_message()
    assert (msg.topic, msg.payload, msg.qos) == ("c02/paho", b"hello", 1)


def test_mqtt31_mqisdp_client_connects(broker, clients):
    """MQTT 3.1 (protocol name "MQIsdp", level 3) is accepted and answered in 3.1 form."""
    c = clients.raw(broker, V31)
    c.send(connect_packet("c02-mqisdp", V31))
    ack = c.recv()
    assert ack.raw == b"\x20\x02\x00\x00", ack
    ack = c.subscribe("c02/v31", qos=1)
    assert ack.reasons == [1]
    c.publish("c02/v31", b"old", qos=1)
    p = c.receive()
    assert (p.topic, p.payload, p.qos) == ("c02/v31", b"old", 1)


def test_mqtt31_paho_client(broker, clients):
    """paho's MQTTv31 mode works end to end."""
    client = clients.paho(broker, "c02-paho31", V31)
    client.subscribe("c02/p31", 2)
    client.publish("c02/p31", b"x", qos=2)
    assert client.expect_message().payload == b"x"


@pytest.mark.parametrize("name,level", [("MQTT", 6), ("MQTT", 2), ("MQTT", 3),
                                        ("MQIsdp", 4)],
                         ids=["MQTT-6", "MQTT-2", "MQTT-3", "MQIsdp-4"])
def test_unsupported_protocol_level_MQTT_3_1_2_2(broker, clients, name, level):
    """[MQTT-3.1.2-2] An unsupported protocol level is answered with a CONNACK with return
    code 0x01 (unacceptable protocol version), in 3.1.1 form, and the connection closed."""
    c = clients.raw(broker, V311)
    body = (len(name).to_bytes(2, "big") + name.encode() + bytes([level, 0x02, 0, 60])
            + b"\x00\x08c02-bad-")
    c.send(frame(0x10, body))
    packets = c.expect_closed()
    assert [p.raw for p in packets] == [b"\x20\x02\x00\x01"], packets


@pytest.mark.parametrize("version,clean", [(V311, False), (V31, True), (V31, False)],
                         ids=["v311-clean0", "v31-clean1", "v31-clean0"])
def test_empty_client_id_refused_MQTT_3_1_3_8(broker, clients, version, clean):
    """[MQTT-3.1.3-8] A zero-byte client id without Clean Session (3.1.1), or any zero-byte
    client id in 3.1, gets CONNACK return code 0x02 (identifier rejected), then the close."""
    c = clients.raw(broker, version)
    c.send(connect_packet("", version, clean=clean))
    packets = c.expect_closed()
    assert [p.raw for p in packets] == [b"\x20\x02\x00\x02"], packets


def test_v311_empty_client_id_with_clean_session_MQTT_3_1_3_6(broker, clients):
    """[MQTT-3.1.3-6] A zero-byte client id with Clean Session 1 is accepted and the server
    assigns an id; two such clients do not take each other over."""
    first = clients.raw(broker, V311)
    first.connect("", clean=True)
    second = clients.raw(broker, V311)
    second.connect("", clean=True)
    first.subscribe("c02/anon", 0)
    second.publish("c02/anon", b"both alive")
    assert first.receive().payload == b"both alive"


def test_v5_empty_client_id_is_assigned_MQTT_3_2_2_16(broker, clients):
    """[MQTT-3.1.3-6], [MQTT-3.2.2-16] A 5.0 client with a zero-byte client id gets an
    Assigned Client Identifier in CONNACK; it is unique and names a real session."""
    first = clients.raw(broker, V5)
    ack = first.connect("", clean=False,
                        props={Prop.SESSION_EXPIRY_INTERVAL: 60})
    assigned = ack.properties.get(Prop.ASSIGNED_CLIENT_IDENTIFIER)
    assert assigned, ack.properties
    other = clients.raw(broker, V5)
    other_ack = other.connect("")
    assert other_ack.properties.get(Prop.ASSIGNED_CLIENT_IDENTIFIER) not in (None, assigned)

    # The assigned id is the session's id: resuming it finds the subscription.
    first.subscribe("c02/assigned", 1)
    first.disconnect()
    again = clients.raw(broker, V5)
    ack = again.connect(assigned, clean=False, props={Prop.SESSION_EXPIRY_INTERVAL: 60})
    assert ack.session_present is True
    assert Prop.ASSIGNED_CLIENT_IDENTIFIER not in ack.properties
    other.publish("c02/assigned", b"to the assigned id", qos=1)
    assert again.receive().payload == b"to the assigned id"


def test_v5_client_id_given_gets_no_assigned_identifier(broker, clients):
    c = clients.raw(broker, V5)
    ack = c.connect("c02-named")
    assert Prop.ASSIGNED_CLIENT_IDENTIFIER not in ack.properties


@pytest.mark.parametrize("first", [
    pytest.param(PINGREQ_PACKET, id="PINGREQ"),
    pytest.param(publish_packet("c02/x", b"early"), id="PUBLISH"),
    pytest.param(subscribe_packet(1, [("c02/#", 0)]), id="SUBSCRIBE"),
    pytest.param(b"\xe0\x00", id="DISCONNECT"),
])
def test_first_packet_not_connect_closes_MQTT_3_1_0_1(broker, clients, first):
    """[MQTT-3.1.0-1] A first packet other than CONNECT closes the connection, with no
    CONNACK, and is not acted on (the early PUBLISH reaches nobody)."""
    watcher = clients.raw(broker, V311)
    watcher.connect("c02-watcher")
    watcher.subscribe("c02/#", 0)
    c = clients.raw(broker, V311)
    c.send(first)
    assert c.expect_closed() == []
    assert watcher.barrier() == []


@pytest.mark.parametrize("version", VERSIONS)
def test_second_connect_closes_MQTT_3_1_0_2(broker, clients, version):
    """[MQTT-3.1.0-2] A second CONNECT is a protocol violation: 3.1.1 closes the connection;
    5.0 sends DISCONNECT 0x82 (Protocol Error) first [MQTT-4.13.1-1]."""
    c = clients.raw(broker, version)
    c.connect("c02-twice")
    c.send(connect_packet("c02-twice", version))
    packets = c.expect_closed()
    if version == V5:
        assert [(p.type, p.reason) for p in packets] == [(DISCONNECT, Reason.PROTOCOL_ERROR)], \
            packets
    else:
        assert packets == []


@pytest.mark.parametrize("version", VERSIONS)
def test_reserved_connect_flag_closes_MQTT_3_1_2_3(broker, clients, version):
    """[MQTT-3.1.2-3] The reserved Connect Flags bit must be 0, else the connection is
    closed (5.0 may send CONNACK 0x81 first; no success CONNACK in any case)."""
    c = clients.raw(broker, version)
    c.send(connect_packet("c02-reserved", version, flags=0x03))
    packets = c.expect_closed()
    assert all(p.type == CONNACK and p.reason >= 0x80 for p in packets), packets


CONNECT_TIMEOUT_CONFIG = "limits:\n  connect_timeout: 1\n"


def test_connect_timeout_closes_silent_connection(start_broker, clients):
    """limits.connect_timeout: connections that have not sent a whole CONNECT after that
    many seconds (one silent, one that sent half a CONNECT) are closed, not before; a
    connected client on the same broker is not affected."""
    broker = start_broker(config_text=CONNECT_TIMEOUT_CONFIG)
    connected = clients.raw(broker, V311)
    connected.connect("c02-patient", keepalive=0)
    start = time.monotonic()
    silent = clients.raw(broker, V311)
    partial = clients.raw(broker, V311)
    partial.send(connect_packet("c02-slow", V311)[:7])
    assert silent.expect_closed(timeout=4) == []
    elapsed = time.monotonic() - start
    assert elapsed >= 0.9, f"closed after {elapsed:.2f}s, before the 1 s connect timeout"
    assert partial.expect_closed(timeout=4) == []
    connected.send(PINGREQ_PACKET)
    assert connected.recv().type == PINGRESP


def test_v5_connack_properties_MQTT_3_2_2(start_broker, clients):
    """[MQTT-3.2.2] The 5.0 CONNACK tells the client the server's limits: Receive Maximum,
    Topic Alias Maximum and Maximum Packet Size from the configuration, Retain, Wildcard
    and Subscription Identifier Available, Shared Subscription Available (the default
    shared_subscriptions.enabled; see test_20_shared.py), no Maximum QoS while QoS 2 is
    allowed, and each property at most once."""
    broker = start_broker(config_text=(
        "limits:\n"
        "  max_packet_size: 65536\n"
        "  topic_alias_maximum: 7\n"
    ))
    c = clients.raw(broker, V5)
    ack = c.connect("c02-props")
    props = ack.properties
    assert 1 <= props.get(Prop.RECEIVE_MAXIMUM, 65535) <= 65535, props
    assert props.get(Prop.TOPIC_ALIAS_MAXIMUM) == 7, props
    assert props.get(Prop.MAXIMUM_PACKET_SIZE) == 65536, props
    assert props.get(Prop.RETAIN_AVAILABLE, 1) == 1, props
    assert props.get(Prop.WILDCARD_SUBSCRIPTION_AVAILABLE, 1) == 1, props
    assert props.get(Prop.SUBSCRIPTION_IDENTIFIER_AVAILABLE, 1) == 1, props
    assert props.get(Prop.SHARED_SUBSCRIPTION_AVAILABLE, 1) == 1, props
    assert Prop.MAXIMUM_QOS not in props, props
    # Nothing granted that the client did not ask for.
    assert Prop.SESSION_EXPIRY_INTERVAL not in props, props
    assert Prop.ASSIGNED_CLIENT_IDENTIFIER not in props, props


def test_v5_default_connack_has_no_protocol_maximum_packet_size(broker, clients):
    """Spec 3.2.2.3.6: an absent Maximum Packet Size means no limit beyond the protocol's.
    With the default configuration there is none to announce, so the property is omitted
    (as Mosquitto does), or at least a value every client accepts: paho-mqtt 1.6 drops the
    connection on any value above 268435455."""
    c = clients.raw(broker, V5)
    ack = c.connect("c02-default-mps")
    assert ack.properties.get(Prop.MAXIMUM_PACKET_SIZE, 0) <= 268435455, ack.properties


def test_v5_paho_connects_with_default_config(broker, clients):
    """A stock paho-mqtt 1.6 5.0 client connects to a broker with the default config."""
    client = clients.paho(broker, "c02-paho-default", V5)
    assert client.connack[0] == 0


def test_v5_connack_maximum_qos_and_session_expiry_cap(start_broker, clients):
    """[MQTT-3.2.2-9] With limits.max_qos 1 CONNACK carries Maximum QoS 1; a Session Expiry
    Interval above limits.max_session_expiry is lowered and the granted value returned
    (spec 3.2.2.3.2)."""
    broker = start_broker(config_text=(
        "limits:\n"
        "  max_qos: 1\n"
        "  max_session_expiry: 100\n"
    ))
    c = clients.raw(broker, V5)
    ack = c.connect("c02-cap", props={Prop.SESSION_EXPIRY_INTERVAL: 1000})
    assert ack.properties.get(Prop.MAXIMUM_QOS) == 1, ack.properties
    assert ack.properties.get(Prop.SESSION_EXPIRY_INTERVAL) == 100, ack.properties


def test_v5_will_in_connect_is_accepted(broker, clients):
    """A 5.0 CONNECT with will properties is accepted (the will is exercised in test_08)."""
    c = clients.raw(broker, V5)
    c.connect("c02-will", will=Will("c02/will", b"w", qos=1,
                                    properties={Prop.CONTENT_TYPE: "text/plain"}))


POLICY_CONFIG = """
listeners:
  - bind: "127.0.0.1:{open_port}"
    allow_anonymous: true
  - bind: "127.0.0.1:{closed_port}"
    allow_anonymous: false
"""


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_listener_without_anonymous_access_refuses_MQTT_3_2_2_2(start_broker, clients, version):
    """A listener with allow_anonymous: false refuses a client without a username (3.1.1
    return code 5 / 5.0 0x87 Not authorized) and, with no password file to check against,
    one with a username (4 / 0x86); the other listener still accepts anonymous clients."""
    open_port, closed_port = free_ports(2)
    b = start_broker(config_text=POLICY_CONFIG.format(open_port=open_port,
                                                       closed_port=closed_port),
                     listen=False, expect_listeners=2)
    assert sorted(b.ports) == sorted([open_port, closed_port])
    closed_index = b.ports.index(closed_port)
    open_index = b.ports.index(open_port)

    anonymous = clients.raw(b, version, index=closed_index)
    anonymous.send(connect_packet("c02-anon", version))
    packets = anonymous.expect_closed()
    assert [p.type for p in packets] == [CONNACK], packets
    assert packets[0].reason == (5 if version == V311 else Reason.NOT_AUTHORIZED)

    named = clients.raw(b, version, index=closed_index)
    named.send(connect_packet("c02-named", version, username="user", password=b"pw"))
    packets = named.expect_closed()
    assert [p.type for p in packets] == [CONNACK], packets
    assert packets[0].reason == (4 if version == V311 else Reason.BAD_USERNAME_OR_PASSWORD)

    ok = clients.raw(b, version, index=open_index)
    assert ok.connect("c02-open").reason == 0
