# SPDX-License-Identifier: Apache-2.0
"""21 flow: what the broker imposes on one MQTT 5.0 connection, each with the `limits:` key
that drives it, for the normal case and the case the spec calls an error:

- outbound Topic Aliases (spec 3.3.2.3.4, `outbound_topic_aliases`): a topic is sent once
  with its alias, then as the alias alone; least recently used aliases are reassigned;
  never above the client's Topic Alias Maximum, never carried to another connection or
  forwarded from a publisher (src/broker/topic_alias_table.cpp, Broker::transmit);
- Receive Maximum towards the broker (spec 3.3.4, `receive_maximum`): QoS 2 PUBLISHes
  awaiting PUBREL beyond it end the connection with 0x93;
- Server Keep Alive (spec 3.2.2.3.14, `server_keep_alive`);
- the Payload Format Indicator check (spec 3.3.2.3.2, `validate_utf8_payloads`): 0x99.

Raw clients (mqtt_helpers.RawClient) check the exact properties. No real client library
here can take part in the alias tests: paho-mqtt 1.6 and libmosquitto 2.0.11 (mosquitto_sub
with `-D connect topic-alias-maximum N`) do not resolve aliases a server sends.
"""
import time

import pytest

from mqtt_helpers import (CONNACK, DISCONNECT, PINGREQ_PACKET, PINGRESP, PUBACK, PUBCOMP,
                          PUBLISH, PUBREC, PUBREL, V311, V5, Prop, Reason, ack_packet,
                          connect_packet, flush, publish_packet)
from mqtt_helpers import clients  # noqa: F401 (fixture, used by name)

# Reason codes only this area meets (spec 2.4).
RECEIVE_MAXIMUM_EXCEEDED = 0x93
PAYLOAD_FORMAT_INVALID = 0x99


def limits_config(**limits):
    """A configuration whose only section is `limits:` with the given keys."""
    lines = ["limits:"] + [f"  {key}: {str(value).lower()}" for key, value in limits.items()]
    return "\n".join(lines) + "\n"


def aliased(messages):
    """(topic as sent, Topic Alias or None) of each PUBLISH."""
    return [(m.topic, m.properties.get(Prop.TOPIC_ALIAS)) for m in messages]


# --- outbound Topic Aliases ----------------------------------------------------------------


def test_outbound_topic_alias_topic_once_then_alias_only_MQTT_3_3_2_11(start_broker, clients):
    """A subscriber that accepts 2 aliases gets each topic once with an alias, then an empty
    topic with that alias; with both aliases taken, the least recently used one is
    reassigned, sent with its new topic. Aliases never exceed 2 [MQTT-3.3.2-11]. The
    broker counts the hits and the topic bytes they saved, logged at stop."""
    broker = start_broker()
    sub = clients.raw(broker, V5)
    sub.connect("c21-alias-sub", props={Prop.TOPIC_ALIAS_MAXIMUM: 2})
    sub.subscribe("c21/alias/#", 1)
    pub = clients.connected(broker, "c21-alias-pub", V5)
    topics = ["c21/alias/a/long/topic", "c21/alias/b", "c21/alias/a/long/topic", "c21/alias/c",
              "c21/alias/b", "c21/alias/c"]
    for i, topic in enumerate(topics):
        pub.publish(topic, f"m{i}", qos=i % 2)
    got = sub.barrier()
    assert [m.payload for m in got] == [f"m{i}".encode() for i in range(6)]
    assert aliased(got) == [
        ("c21/alias/a/long/topic", 1),
        ("c21/alias/b", 2),
        ("", 1),             # a is known: b becomes the least recently used
        ("c21/alias/c", 2),  # takes b's alias
        ("c21/alias/b", 1),  # takes a's
        ("", 2),
    ], got
    assert [m.qos for m in got] == [0, 1, 0, 1, 0, 1]

    assert broker.stop() == 0
    broker.wait_for_log(r"topic aliases: 2 hits, %d bytes saved" %
                        len("c21/alias/a/long/topic" + "c21/alias/c"))


@pytest.mark.parametrize("case", ["no-maximum", "maximum-0", "v311", "turned-off"])
def test_no_outbound_alias_when_not_allowed_MQTT_3_1_2_27(start_broker, clients, case):
    """[MQTT-3.1.2-27] No Topic Alias at all to a 5.0 client whose CONNECT has no Topic
    Alias Maximum or 0, none to 3.1.1 clients, and none when the broker's
    outbound_topic_aliases is 0 even though the client accepts them: every PUBLISH carries
    its whole topic."""
    broker = start_broker(config_text=limits_config(
        outbound_topic_aliases=0 if case == "turned-off" else 10))
    version = V311 if case == "v311" else V5
    props = {"no-maximum": {}, "maximum-0": {Prop.TOPIC_ALIAS_MAXIMUM: 0}, "v311": None,
             "turned-off": {Prop.TOPIC_ALIAS_MAXIMUM: 10}}[case]
    sub = clients.raw(broker, version)
    sub.connect("c21-noalias-sub", props=props)
    sub.subscribe("c21/noalias", 1)
    pub = clients.connected(broker, "c21-noalias-pub", V5)
    for qos in (0, 1, 0):
        pub.publish("c21/noalias", b"x", qos=qos)
    flush(pub)
    got = sub.barrier()
    assert aliased(got) == [("c21/noalias", None)] * 3, got


def test_outbound_aliases_capped_by_limits_MQTT_3_3_2_11(start_broker, clients):
    """outbound_topic_aliases 1 caps a client that accepts 100: alias 1 is all it gets,
    reassigned for each new topic."""
    broker = start_broker(config_text=limits_config(outbound_topic_aliases=1))
    sub = clients.raw(broker, V5)
    sub.connect("c21-cap-sub", props={Prop.TOPIC_ALIAS_MAXIMUM: 100})
    sub.subscribe("c21/cap/#", 0)
    pub = clients.connected(broker, "c21-cap-pub", V5)
    for topic in ("c21/cap/a", "c21/cap/b", "c21/cap/b", "c21/cap/a"):
        pub.publish(topic, b"x")
    flush(pub)
    assert aliased(sub.barrier()) == [("c21/cap/a", 1), ("c21/cap/b", 1), ("", 1),
                                      ("c21/cap/a", 1)]


def test_aliases_end_with_the_connection_and_are_not_forwarded_MQTT_3_3_2_7(broker, clients):
    """[MQTT-3.3.2-7] Aliases last as long as the network connection: a subscriber that
    comes back to its session is sent the topic again, in the redelivered message (DUP)
    before the alias alone is used. The publisher's own alias (7) means nothing to the
    subscriber and is never forwarded [MQTT-3.3.2-11]; the broker assigns its own."""
    props = {Prop.TOPIC_ALIAS_MAXIMUM: 3}
    sub = clients.raw(broker, V5)
    sub.connect("c21-life-sub", props=props, clean=True, session_expiry=300)
    sub.subscribe("c21/life", 1)
    pub = clients.connected(broker, "c21-life-pub", V5)
    pub.publish("c21/life", b"first", qos=1, props={Prop.TOPIC_ALIAS: 7})
    (first,) = sub.barrier(ack=False)  # left unacknowledged
    assert aliased([first]) == [("c21/life", 1)], first
    sub.drop()

    # By the publisher's alias alone; the broker resolves it before routing.
    pub.publish("", b"second", qos=1, props={Prop.TOPIC_ALIAS: 7})
    back = clients.raw(broker, V5)
    assert back.connect("c21-life-sub", props=props, clean=False,
                        session_expiry=300).session_present
    got = back.barrier()
    # "second" is queued, or in flight (DUP) if it raced the broker noticing the drop.
    assert [m.payload for m in got] == [b"first", b"second"], got
    assert got[0].dup, got
    assert aliased(got) == [("c21/life", 1), ("", 1)], got


# --- Receive Maximum -----------------------------------------------------------------------


def test_receive_maximum_window_MQTT_3_3_4_7(start_broker, clients):
    """CONNACK carries limits.receive_maximum (2) as Receive Maximum (spec 3.2.2.3.3). A
    client may have that many QoS 2 PUBLISHes awaiting PUBREL [MQTT-3.3.4-7]; a resend of
    one of them with DUP is not a new one, each PUBREL frees a slot, and QoS 1 (acknowledged
    at once) never counts."""
    broker = start_broker(config_text=limits_config(receive_maximum=2))
    c = clients.raw(broker, V5)
    assert c.connect("c21-rm").properties.get(Prop.RECEIVE_MAXIMUM) == 2
    for packet_id in (1, 2):
        c.publish("c21/rm", b"x", qos=2, packet_id=packet_id, complete=False)
        assert c.expect(PUBREC, packet_id).reason == Reason.NO_MATCHING_SUBSCRIBERS
    c.publish("c21/rm", b"x", qos=2, packet_id=2, dup=True, complete=False)
    assert c.expect(PUBREC, 2).reason == 0  # already handled: acknowledged only
    c.publish("c21/rm", b"x", qos=1, packet_id=10)
    c.send(ack_packet(PUBREL, 1, V5))
    assert c.expect(PUBCOMP, 1).reason == 0
    c.publish("c21/rm", b"x", qos=2, packet_id=3, complete=False)
    assert c.expect(PUBREC, 3).type == PUBREC
    assert c.barrier() == []


def test_receive_maximum_exceeded_disconnects_0x93_MQTT_3_3_4_7(start_broker, clients):
    """A 5.0 client that sends a third QoS 2 PUBLISH while two await PUBREL, against a
    Receive Maximum of 2 [MQTT-3.3.4-7], gets DISCONNECT 0x93 (Receive Maximum exceeded) and
    the connection closes; the message is not delivered. A 3.1.1 client, which was told no
    Receive Maximum, is not limited."""
    broker = start_broker(config_text=limits_config(receive_maximum=2))
    sub = clients.connected(broker, "c21-rmx-sub", V5)
    sub.subscribe("c21/rmx/#", 2)
    old = clients.connected(broker, "c21-rmx-311", V311)
    for packet_id in (1, 2, 3):
        old.publish("c21/rmx/311", b"ok", qos=2, packet_id=packet_id, complete=False)
        old.expect(PUBREC, packet_id)

    c = clients.connected(broker, "c21-rmx", V5)
    for packet_id in (1, 2):
        c.publish("c21/rmx/5", f"ok{packet_id}", qos=2, packet_id=packet_id, complete=False)
        c.expect(PUBREC, packet_id)
    c.publish("c21/rmx/5", b"one too many", qos=2, packet_id=3, complete=False)
    packets = c.expect_closed()
    assert [(p.type, p.reason) for p in packets] == [(DISCONNECT, RECEIVE_MAXIMUM_EXCEEDED)], \
        packets
    assert old.barrier() == []
    payloads = sorted(m.payload for m in sub.barrier())
    assert payloads == [b"ok", b"ok", b"ok", b"ok1", b"ok2"], payloads


def test_default_receive_maximum_is_65535(broker, clients):
    """Without the key the broker sends Receive Maximum 65535 (the value absence means)."""
    c = clients.raw(broker, V5)
    assert c.connect("c21-rm-default").properties.get(Prop.RECEIVE_MAXIMUM) == 65535


# --- Server Keep Alive ---------------------------------------------------------------------


def test_server_keep_alive_in_connack_MQTT_3_2_2_21(start_broker, clients):
    """With limits.server_keep_alive 30, a 5.0 client asking for 60 s or 0 (off) gets Server
    Keep Alive 30 in CONNACK and must use it [MQTT-3.2.2-21]; one asking for 30 gets no
    property; a 3.1.1 client cannot be told and gets the plain CONNACK."""
    broker = start_broker(config_text=limits_config(server_keep_alive=30))
    for keepalive, expected in ((60, 30), (0, 30), (30, None)):
        c = clients.raw(broker, V5)
        ack = c.connect(f"c21-ska-{keepalive}", keepalive=keepalive)
        assert ack.properties.get(Prop.SERVER_KEEP_ALIVE) == expected, (keepalive, ack)
    old = clients.raw(broker, V311)
    assert old.connect("c21-ska-311", keepalive=60).raw == b"\x20\x02\x00\x00"


def test_no_server_keep_alive_by_default_MQTT_3_2_2_22(broker, clients):
    """[MQTT-3.2.2-22] Without limits.server_keep_alive the CONNACK has no Server Keep Alive:
    the client's own value holds."""
    c = clients.raw(broker, V5)
    assert Prop.SERVER_KEEP_ALIVE not in c.connect("c21-ska-none", keepalive=7).properties


def test_server_keep_alive_is_enforced_MQTT_3_1_2_24(start_broker, clients):
    """With limits.server_keep_alive 1, a silent 5.0 client that asked for 60 s is
    disconnected with 0x8D (Keep Alive timeout) after 1.5 x 1 s, not 90 s [MQTT-3.1.2-24]
    (the broker checks once a second, hence the bounds). A silent 3.1.1 client with 60 s,
    which was told nothing, is still connected afterwards."""
    broker = start_broker(config_text=limits_config(server_keep_alive=1))
    old = clients.connected(broker, "c21-ska-old", V311, keepalive=60)
    c = clients.raw(broker, V5)
    start = time.monotonic()
    assert c.connect("c21-ska-silent", keepalive=60).properties[Prop.SERVER_KEEP_ALIVE] == 1
    packets = c.expect_closed(timeout=4)
    elapsed = time.monotonic() - start
    assert elapsed >= 1.0, f"closed after {elapsed:.2f}s"
    assert [(p.type, p.reason) for p in packets] == [(DISCONNECT, Reason.KEEP_ALIVE_TIMEOUT)]
    old.send(PINGREQ_PACKET)
    assert old.recv().type == PINGRESP


# --- Payload Format Indicator --------------------------------------------------------------

VALID_UTF8 = "grüße, 温度 21.5 °C, \U0001F600, NUL \0 included".encode()
INVALID_UTF8 = [
    b"\xc3\x28",                     # bad continuation byte
    b"\xed\xa0\x80",                 # a surrogate (U+D800)
    b"\xc0\xaf",                     # overlong '/'
    b"ascii, then a lone \x80 byte",
]


def test_valid_utf8_payload_is_forwarded_with_its_indicator_MQTT_3_3_2_4(start_broker,
                                                                         clients):
    """With validate_utf8_payloads on, a payload marked UTF-8 that is well-formed (U+0000
    included: it is well-formed, only MQTT strings forbid it) is delivered with its Payload
    Format Indicator unaltered [MQTT-3.3.2-4]; payloads marked 0 (bytes) or unmarked are
    not checked."""
    broker = start_broker(config_text=limits_config(validate_utf8_payloads=True))
    sub = clients.connected(broker, "c21-pfi-sub", V5)
    sub.subscribe("c21/pfi", 1)
    pub = clients.connected(broker, "c21-pfi-pub", V5)
    pub.publish("c21/pfi", VALID_UTF8, qos=1, props={Prop.PAYLOAD_FORMAT_INDICATOR: 1})
    pub.publish("c21/pfi", INVALID_UTF8[0], qos=1, props={Prop.PAYLOAD_FORMAT_INDICATOR: 0})
    pub.publish("c21/pfi", INVALID_UTF8[0], qos=1)
    got = sub.barrier()
    assert [(m.payload, m.properties.get(Prop.PAYLOAD_FORMAT_INDICATOR)) for m in got] == \
        [(VALID_UTF8, 1), (INVALID_UTF8[0], 0), (INVALID_UTF8[0], None)], got


@pytest.mark.parametrize("payload", INVALID_UTF8, ids=["continuation", "surrogate", "overlong",
                                                       "lone-byte"])
def test_invalid_utf8_payload_refused_0x99_MQTT_3_3_2_3_2(start_broker, clients, payload):
    """With validate_utf8_payloads on, a payload marked UTF-8 that is not is refused with
    0x99 (Payload format invalid): PUBACK at QoS 1, PUBREC at QoS 2 (which ends that flow:
    a PUBREL for it is answered 0x92), and DISCONNECT at QoS 0, which has no
    acknowledgement. Nothing is delivered or retained."""
    broker = start_broker(config_text=limits_config(validate_utf8_payloads=True))
    sub = clients.connected(broker, "c21-bad-sub", V5)
    sub.subscribe("c21/bad", 2)
    pub = clients.connected(broker, "c21-bad-pub", V5)
    marked = {Prop.PAYLOAD_FORMAT_INDICATOR: 1}
    pub.send(publish_packet("c21/bad", payload, qos=1, packet_id=1, retain=True, version=V5,
                            props=marked))
    assert pub.expect(PUBACK, 1).reason == PAYLOAD_FORMAT_INVALID
    pub.send(publish_packet("c21/bad", payload, qos=2, packet_id=2, retain=True, version=V5,
                            props=marked))
    assert pub.expect(PUBREC, 2).reason == PAYLOAD_FORMAT_INVALID
    pub.send(ack_packet(PUBREL, 2, V5))
    assert pub.expect(PUBCOMP, 2).reason == Reason.PACKET_IDENTIFIER_NOT_FOUND
    flush(pub)
    pub.send(publish_packet("c21/bad", payload, qos=0, version=V5, props=marked))
    packets = pub.expect_closed()
    assert [(p.type, p.reason) for p in packets] == [(DISCONNECT, PAYLOAD_FORMAT_INVALID)], \
        packets
    assert sub.barrier() == []
    late = clients.connected(broker, "c21-bad-late", V5)
    late.subscribe("c21/bad", 1)
    assert late.barrier() == []  # nothing retained


def test_payload_format_not_checked_by_default(broker, clients):
    """validate_utf8_payloads is off by default: a payload marked UTF-8 that is not is
    delivered like any other."""
    sub = clients.connected(broker, "c21-nocheck-sub", V5)
    sub.subscribe("c21/nocheck", 1)
    pub = clients.connected(broker, "c21-nocheck-pub", V5)
    pub.send(publish_packet("c21/nocheck", INVALID_UTF8[0], qos=1, packet_id=9, version=V5,
                            props={Prop.PAYLOAD_FORMAT_INDICATOR: 1}))
    assert pub.expect(PUBACK, 9).reason == 0
    (got,) = sub.barrier()
    assert got.payload == INVALID_UTF8[0]
    assert got.type == PUBLISH


@pytest.mark.parametrize("prop", [Prop.RECEIVE_MAXIMUM, Prop.MAXIMUM_PACKET_SIZE],
                         ids=["receive-maximum-spec_3_1_2_11_3",
                              "maximum-packet-size-spec_3_1_2_11_4"])
def test_connect_with_flow_control_property_0_is_refused(broker, clients, prop):
    """A CONNECT with Receive Maximum 0 (spec 3.1.2.11.3) or Maximum Packet Size 0 (spec
    3.1.2.11.4) is a Protocol Error: the connection is not accepted (no CONNACK 0x00), it is
    closed [MQTT-3.1.4-2]."""
    c = clients.raw(broker, V5)
    c.send(connect_packet("c21-zero", V5, props={prop: 0}))
    packets = c.expect_closed()
    assert all(p.type == CONNACK and p.reason == Reason.PROTOCOL_ERROR for p in packets), \
        packets


def test_payload_format_indicator_2_is_a_protocol_error_spec_3_3_2_3_2(broker, clients):
    """A Payload Format Indicator other than 0 or 1 is a Protocol Error (spec 3.3.2.3.2):
    DISCONNECT 0x82, and nothing is delivered."""
    sub = clients.connected(broker, "c21-pfi2-sub", V5)
    sub.subscribe("c21/pfi2", 1)
    pub = clients.connected(broker, "c21-pfi2-pub", V5)
    pub.send(publish_packet("c21/pfi2", b"x", qos=1, packet_id=1, version=V5,
                            props={Prop.PAYLOAD_FORMAT_INDICATOR: 2}))
    packets = pub.expect_closed()
    assert [(p.type, p.reason) for p in packets] == [(DISCONNECT, Reason.PROTOCOL_ERROR)], \
        packets
    assert sub.barrier() == []
