# SPDX-License-Identifier: Apache-2.0
"""05 publish: the QoS 0, 1 and 2 flows in both directions (spec 3.3 to 3.7, 4.3), byte by
byte with the raw client and end to end with paho; ordering [MQTT-4.6.0]; exactly once
across a reconnect; redelivery of unacknowledged messages [MQTT-4.4.0-1]."""
import pytest

from mqtt_helpers import (DISCONNECT, PINGREQ_PACKET, PINGRESP, PUBACK, PUBCOMP, PUBLISH,
                          PUBREC, PUBREL, V311, V5, VERSIONS, Prop, Reason, ack_packet, flush,
                          persistent, publish_packet)
from mqtt_helpers import clients  # noqa: F401 (fixture, used by name)


def _pair(broker, clients, version, topic, sub_qos=2, tag=""):
    """A connected subscriber to `topic` and a connected publisher."""
    sub = clients.connected(broker, f"c05-sub{tag}", version)
    sub.subscribe(topic, sub_qos)
    pub = clients.connected(broker, f"c05-pub{tag}", version)
    return sub, pub


@pytest.mark.parametrize("version", VERSIONS)
def test_qos0_flow_MQTT_4_3_1(broker, clients, version):
    """[MQTT-4.3.1] QoS 0: the publisher gets no acknowledgement; the subscriber receives
    the PUBLISH at QoS 0 with no packet id and DUP 0 [MQTT-3.3.1-2], and sends nothing."""
    sub, pub = _pair(broker, clients, version, "c05/q0")
    pub.send(publish_packet("c05/q0", b"zero", version=version))
    pub.send(PINGREQ_PACKET)
    assert pub.recv().type == PINGRESP  # nothing before it: no ack for QoS 0
    p = sub.recv()
    assert (p.type, p.topic, p.payload, p.qos, p.dup, p.retain, p.packet_id) == \
        (PUBLISH, "c05/q0", b"zero", 0, False, False, None), p
    assert sub.barrier() == []


@pytest.mark.parametrize("version", VERSIONS)
def test_qos1_flow_MQTT_4_3_2(broker, clients, version):
    """[MQTT-4.3.2-2] QoS 1 from the publisher: PUBACK with the PUBLISH's packet id (5.0:
    reason 0x00). [MQTT-4.3.2-1] QoS 1 to the subscriber: a packet id, DUP 0; after the
    subscriber's PUBACK the message is not sent again."""
    sub, pub = _pair(broker, clients, version, "c05/q1")
    pub.send(publish_packet("c05/q1", b"one", qos=1, packet_id=0x1234, version=version))
    ack = pub.recv()
    assert (ack.type, ack.packet_id, ack.reason) == (PUBACK, 0x1234, 0), ack
    p = sub.receive(ack=False)
    assert (p.payload, p.qos, p.dup) == (b"one", 1, False) and p.packet_id, p
    sub.send(ack_packet(PUBACK, p.packet_id, version))
    assert sub.barrier() == []
    assert pub.barrier() == []


@pytest.mark.parametrize("version", VERSIONS)
def test_qos2_flow_MQTT_4_3_3(broker, clients, version):
    """[MQTT-4.3.3] QoS 2 from the publisher: PUBLISH, PUBREC, PUBREL, PUBCOMP with one
    packet id. QoS 2 to the subscriber: PUBLISH, the subscriber's PUBREC, the broker's
    PUBREL (fixed header flags 0b0010 [MQTT-3.6.1-1]), the subscriber's PUBCOMP."""
    sub, pub = _pair(broker, clients, version, "c05/q2")
    pub.send(publish_packet("c05/q2", b"two", qos=2, packet_id=77, version=version))
    rec = pub.recv()
    assert (rec.type, rec.packet_id, rec.reason) == (PUBREC, 77, 0), rec
    pub.send(ack_packet(PUBREL, 77, version))
    comp = pub.recv()
    assert (comp.type, comp.packet_id, comp.reason) == (PUBCOMP, 77, 0), comp

    p = sub.receive(ack=False)
    assert (p.payload, p.qos, p.dup) == (b"two", 2, False) and p.packet_id, p
    sub.send(ack_packet(PUBREC, p.packet_id, version))
    rel = sub.recv()
    assert (rel.type, rel.flags, rel.packet_id) == (PUBREL, 0x2, p.packet_id), rel
    sub.send(ack_packet(PUBCOMP, p.packet_id, version))
    assert sub.barrier() == []
    assert pub.barrier() == []


@pytest.mark.parametrize("version", VERSIONS)
def test_delivered_qos_is_min_of_publish_and_subscription_MQTT_3_8_4_6(broker, clients,
                                                                       version):
    """[MQTT-3.8.4-6] A message is delivered at the lower of its QoS and the QoS granted to
    the subscription: every pair of 0, 1, 2."""
    subs = []
    for sub_qos in range(3):
        s = clients.connected(broker, f"c05-min-{sub_qos}", version)
        s.subscribe("c05/min", sub_qos)
        subs.append(s)
    pub = clients.connected(broker, "c05-min-pub", version)
    for pub_qos in range(3):
        pub.publish("c05/min", f"q{pub_qos}", qos=pub_qos)
    pub.barrier()
    for sub_qos, s in enumerate(subs):
        got = [(p.payload, p.qos) for p in s.barrier()]
        assert got == [(f"q{q}".encode(), min(q, sub_qos)) for q in range(3)], (sub_qos, got)


def test_v5_puback_no_matching_subscribers(broker, clients):
    """5.0 (spec 3.4.2.1): a QoS 1 PUBLISH nobody subscribes to is acknowledged with reason
    0x10 (No matching subscribers); QoS 2 gets PUBREC 0x10."""
    pub = clients.connected(broker, "c05-lonely", V5)
    pub.send(publish_packet("c05/nobody", b"x", qos=1, packet_id=5, version=V5))
    ack = pub.expect(PUBACK, 5)
    assert ack.reason == Reason.NO_MATCHING_SUBSCRIBERS, ack
    pub.send(publish_packet("c05/nobody", b"x", qos=2, packet_id=6, version=V5))
    rec = pub.expect(PUBREC, 6)
    assert rec.reason == Reason.NO_MATCHING_SUBSCRIBERS, rec
    pub.send(ack_packet(PUBREL, 6, V5))
    assert pub.expect(PUBCOMP, 6).reason == 0


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_1000_messages_in_order_MQTT_4_6_0(broker, clients, version, qos):
    """[MQTT-4.6.0-5]/[MQTT-4.6.0-6] One publisher, one subscriber (both paho): 1000
    messages arrive complete and in the order sent, at each QoS."""
    count = 1000
    sub = clients.paho(broker, f"c05-order-sub-{qos}", version)
    sub.subscribe("c05/order", qos)
    pub = clients.paho(broker, f"c05-order-pub-{qos}", version)
    infos = [pub.publish("c05/order", str(i), qos=qos, wait=False) for i in range(count)]
    infos[-1].wait_for_publish(pub.timeout)
    got = sub.expect_messages(count, timeout=20)
    assert [m.payload for m in got] == [str(i).encode() for i in range(count)]
    assert {m.qos for m in got} == {qos}


@pytest.mark.parametrize("version", VERSIONS)
def test_qos2_exactly_once_across_reconnect_MQTT_4_3_3_10(broker, clients, version):
    """[MQTT-4.3.3-10] (3.1.1: [MQTT-4.3.3-2]) A persistent-session publisher sends PUBLISH
    QoS 2, gets PUBREC, loses the connection before PUBREL, reconnects with Clean Start 0
    and sends the PUBLISH again with DUP 1 and the same packet id: the broker answers PUBREC
    and does not route it again; PUBREL gets PUBCOMP. The subscriber gets it once."""
    sub = clients.connected(broker, "c05-once-sub", version)
    sub.subscribe("c05/once/#", 2)

    pub = clients.connected(broker, "c05-once-pub", version, **persistent(version))
    pub.send(publish_packet("c05/once/x", b"exactly once", qos=2, packet_id=42,
                            version=version))
    assert pub.expect(PUBREC, 42).reason == 0
    pub.drop()

    pub = clients.raw(broker, version)
    assert pub.connect("c05-once-pub", **persistent(version)).session_present is True
    pub.send(publish_packet("c05/once/x", b"exactly once", qos=2, packet_id=42, dup=True,
                            version=version))
    rec = pub.recv()
    assert (rec.type, rec.packet_id) == (PUBREC, 42), rec
    assert rec.reason < 0x80, rec
    pub.send(ack_packet(PUBREL, 42, version))
    comp = pub.recv()
    assert (comp.type, comp.packet_id, comp.reason) == (PUBCOMP, 42, 0), comp

    # After PUBCOMP the packet id is free again (spec 4.3.3): reusing it is a new message.
    pub.publish("c05/once/marker", b"marker", qos=2, packet_id=42)
    got = []
    while True:
        p = sub.receive()
        if p.topic == "c05/once/marker":
            break
        got.append(p.payload)
    assert got == [b"exactly once"]


@pytest.mark.parametrize("version", VERSIONS)
def test_pubrel_for_unknown_packet_id(broker, clients, version):
    """A PUBREL for a packet id with no QoS 2 flow still gets PUBCOMP (5.0: reason 0x92,
    Packet Identifier not found), so a publisher's retry after a reconnect always ends."""
    pub = clients.connected(broker, "c05-stray", version)
    pub.send(ack_packet(PUBREL, 999, version))
    comp = pub.recv()
    assert (comp.type, comp.packet_id) == (PUBCOMP, 999), comp
    if version == V5:
        assert comp.reason == Reason.PACKET_IDENTIFIER_NOT_FOUND, comp


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("qos,state", [(1, "no-puback"), (2, "no-pubrec"),
                                       (2, "no-pubcomp")])
def test_unacknowledged_message_redelivered_on_reconnect_MQTT_4_4_0_1(broker, clients, version,
                                                                      qos, state):
    """[MQTT-4.4.0-1] (3.1.1: [MQTT-4.4.0-1]) A subscriber with a persistent session drops
    the connection before acknowledging: on reconnect with Clean Start 0 the broker resends
    the PUBLISH with DUP 1 and the same packet id [MQTT-3.3.1-1], or, when PUBREC had
    already arrived, the PUBREL. Then the flow completes and nothing more is sent."""
    sub = clients.connected(broker, "c05-redo", version, **persistent(version))
    sub.subscribe("c05/redo", qos)
    pub = clients.connected(broker, "c05-redo-pub", version)
    pub.publish("c05/redo", b"again", qos=qos)
    first = sub.receive(ack=False)
    assert (first.qos, first.dup) == (qos, False), first
    if state == "no-pubcomp":
        sub.send(ack_packet(PUBREC, first.packet_id, version))
        sub.expect(PUBREL, first.packet_id)
    sub.drop()

    sub = clients.raw(broker, version)
    assert sub.connect("c05-redo", **persistent(version)).session_present is True
    p = sub.recv()
    if state == "no-pubcomp":
        assert (p.type, p.packet_id) == (PUBREL, first.packet_id), p
        sub.send(ack_packet(PUBCOMP, p.packet_id, version))
    else:
        assert (p.type, p.payload, p.qos, p.dup, p.packet_id) == \
            (PUBLISH, b"again", qos, True, first.packet_id), p
        sub.ack(p)
    assert sub.barrier() == []


@pytest.mark.parametrize("version", VERSIONS)
def test_publish_above_max_qos_is_refused(start_broker, clients, version):
    """With limits.max_qos 1, a QoS 2 PUBLISH is refused: 5.0 gets DISCONNECT 0x9B (QoS not
    supported) [MQTT-3.2.2-11] (spec 3.2.2.3.4), 3.1.1 a close; nothing is routed."""
    broker = start_broker(config_text="limits:\n  max_qos: 1\n")
    sub = clients.connected(broker, "c05-maxqos-sub", version)
    sub.subscribe("c05/maxqos", 1)
    pub = clients.connected(broker, "c05-maxqos-pub", version)
    pub.send(publish_packet("c05/maxqos", b"too high", qos=2, packet_id=1, version=version))
    packets = pub.expect_closed()
    if version == V5:
        assert [(p.type, p.reason) for p in packets] == \
            [(DISCONNECT, Reason.QOS_NOT_SUPPORTED)], packets
    else:
        assert packets == []
    assert sub.barrier() == []


def test_v311_subscriber_receives_from_v5_publisher_and_back(broker, clients):
    """Versions mix: a 3.1.1 subscriber receives a 5.0 publisher's message, and the reverse,
    each encoded in the receiver's version."""
    old = clients.connected(broker, "c05-old", V311)
    new = clients.connected(broker, "c05-new", V5)
    old.subscribe("c05/mix/old", 1)
    new.subscribe("c05/mix/new", 1)
    new.publish("c05/mix/old", b"from 5.0", qos=1)
    old.publish("c05/mix/new", b"from 3.1.1", qos=1)
    assert old.receive().payload == b"from 5.0"
    assert new.receive().payload == b"from 3.1.1"


def test_v5_receive_maximum_limits_unacknowledged_publishes_MQTT_3_3_4_9(broker, clients):
    """[MQTT-3.3.4-9] The server sends no more unacknowledged QoS 1/2 PUBLISHes than the
    client's Receive Maximum (here 2); each PUBACK lets one more through, in order."""
    sub = clients.connected(broker, "c05-recvmax", V5, props={Prop.RECEIVE_MAXIMUM: 2})
    sub.subscribe("c05/rm", 1)
    pub = clients.connected(broker, "c05-rm-pub", V5)
    for i in range(6):
        pub.publish("c05/rm", f"m{i}", qos=1)
    flush(pub)
    window = sub.barrier(ack=False)
    assert [p.payload for p in window] == [b"m0", b"m1"]
    got = []
    for p in window:
        sub.ack(p)
        got.append(p.payload)
    while len(got) < 6:
        got.append(sub.receive().payload)
    assert got == [f"m{i}".encode() for i in range(6)]


def test_v5_maximum_packet_size_of_the_client_MQTT_3_1_2_24(broker, clients):
    """5.0 [MQTT-3.1.2-24], [MQTT-3.1.2-25] The server does not send a packet larger than
    the client's Maximum Packet Size: a message that would be is dropped for that client
    (not for others), and later small messages still arrive."""
    small = clients.connected(broker, "c05-small", V5, props={Prop.MAXIMUM_PACKET_SIZE: 64})
    small.subscribe("c05/size", 1)
    big = clients.connected(broker, "c05-big", V5)
    big.subscribe("c05/size", 1)
    pub = clients.connected(broker, "c05-size-pub", V5)
    pub.publish("c05/size", b"x" * 100, qos=1)
    pub.publish("c05/size", b"tiny", qos=1)
    flush(pub)
    assert [p.payload for p in small.barrier()] == [b"tiny"]
    assert [p.payload for p in big.barrier()] == [b"x" * 100, b"tiny"]


def test_v5_topic_alias_from_the_client(broker, clients):
    """5.0 spec 3.3.2.3.4: a PUBLISH with a topic and Topic Alias 1 sets the alias; a later
    PUBLISH with an empty topic and alias 1 goes to that topic. Subscribers get the full
    topic name and no alias."""
    sub = clients.connected(broker, "c05-alias-sub", V5)
    sub.subscribe("c05/alias/#", 1)
    pub = clients.connected(broker, "c05-alias-pub", V5)
    pub.publish("c05/alias/long", b"first", qos=1, props={Prop.TOPIC_ALIAS: 1})
    pub.publish("", b"second", qos=1, props={Prop.TOPIC_ALIAS: 1})
    pub.publish("c05/alias/other", b"third", qos=1, props={Prop.TOPIC_ALIAS: 1})
    pub.publish("", b"fourth", qos=1, props={Prop.TOPIC_ALIAS: 1})
    got = [(p.topic, p.payload, Prop.TOPIC_ALIAS in p.properties) for p in sub.barrier()]
    assert got == [("c05/alias/long", b"first", False), ("c05/alias/long", b"second", False),
                   ("c05/alias/other", b"third", False), ("c05/alias/other", b"fourth", False)]


@pytest.mark.parametrize("alias,topic", [(11, "c05/a"), (0, "c05/a"), (1, "")],
                         ids=["above-maximum", "zero-MQTT_3_3_2_8", "unknown-alias"])
def test_v5_bad_topic_alias_disconnects_MQTT_3_3_2_9(start_broker, clients, alias, topic):
    """5.0 [MQTT-3.3.2-9] A Topic Alias above the server's Topic Alias Maximum (config 10)
    and [MQTT-3.3.2-8] a Topic Alias of 0 are answered with DISCONNECT 0x94 (Topic Alias
    invalid); an empty topic with an alias never set is a Protocol Error (DISCONNECT 0x82)
    (spec 3.3.2.3.4)."""
    broker = start_broker(config_text="limits:\n  topic_alias_maximum: 10\n")
    pub = clients.connected(broker, "c05-badalias", V5)
    pub.send(publish_packet(topic, b"x", qos=1, packet_id=1, version=V5,
                            props={Prop.TOPIC_ALIAS: alias}))
    packets = pub.expect_closed()
    expected = Reason.PROTOCOL_ERROR if alias == 1 else 0x94
    assert [(p.type, p.reason) for p in packets] == [(DISCONNECT, expected)], packets


def test_v5_topic_aliases_do_not_survive_the_connection_MQTT_3_3_2_7(broker, clients):
    """5.0 [MQTT-3.3.2-7] Topic Alias mappings belong to one network connection: after a
    reconnect (even to a persistent session) an alias must be set again."""
    pub = clients.connected(broker, "c05-alias-again", V5, **persistent(V5))
    pub.publish("c05/alias2", b"x", qos=1, props={Prop.TOPIC_ALIAS: 1})
    pub.disconnect()
    pub = clients.connected(broker, "c05-alias-again", V5, **persistent(V5))
    pub.send(publish_packet("", b"y", qos=1, packet_id=2, version=V5,
                            props={Prop.TOPIC_ALIAS: 1}))
    packets = pub.expect_closed()
    assert [(p.type, p.reason) for p in packets] == [(DISCONNECT, Reason.PROTOCOL_ERROR)]
