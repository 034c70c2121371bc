# SPDX-License-Identifier: Apache-2.0
"""06 subscribe: SUBSCRIBE/SUBACK and UNSUBSCRIBE/UNSUBACK (spec 3.8 to 3.11) and topic
matching (spec 4.7): wildcards, '$' topics, overlapping subscriptions, the QoS cap.

Negative checks ("not delivered") use round trips, not waits: the publisher's PINGREQ
round trip shows the broker has routed its earlier PUBLISHes, then the subscriber's shows
it has received whatever was routed to it (RawClient.barrier)."""
import pytest

from mqtt_helpers import (DISCONNECT, PUBLISH, SUBACK, UNSUBACK, V311, V5, VERSIONS, Prop,
                          Reason, flush, publish_packet, subscribe_packet)
from mqtt_helpers import clients  # noqa: F401 (fixture, used by name)


def _delivered(sub, pub, topics, qos=0):
    """Publishes one message per topic (payload = topic) and returns the topics `sub`
    received, in order."""
    for topic in topics:
        pub.publish(topic, topic, qos=qos)
    flush(pub)
    return [p.topic for p in sub.barrier()]


@pytest.mark.parametrize("version", VERSIONS)
def test_single_level_wildcard_MQTT_4_7_1_3(broker, clients, version):
    """[MQTT-4.7.1-3] '+' matches exactly one level, including an empty one."""
    sub = clients.connected(broker, "c06-plus", version)
    sub.subscribe("c06/+/c", 0)
    sub.subscribe("+", 0)
    pub = clients.connected(broker, "c06-pub", version)
    got = _delivered(sub, pub, ["c06/b/c", "c06/x/c", "c06//c", "c06/b/d", "c06/b/c/d",
                                "c06/c", "top", "/top"])
    assert got == ["c06/b/c", "c06/x/c", "c06//c", "top"]


@pytest.mark.parametrize("version", VERSIONS)
def test_multi_level_wildcard_MQTT_4_7_1_2(broker, clients, version):
    """[MQTT-4.7.1-2] '#' matches the parent level and any number of child levels."""
    sub = clients.connected(broker, "c06-hash", version)
    sub.subscribe("c06/a/#", 0)
    pub = clients.connected(broker, "c06-pub", version)
    got = _delivered(sub, pub, ["c06/a", "c06/a/b", "c06/a/b/c", "c06/a/", "c06/ab",
                                "c06/b/a", "c06"])
    assert got == ["c06/a", "c06/a/b", "c06/a/b/c", "c06/a/"]


@pytest.mark.parametrize("version", VERSIONS)
def test_hash_alone_matches_everything_but_dollar_topics_MQTT_4_7_2_1(broker, clients,
                                                                    version):
    """[MQTT-4.7.2-1] Filters starting with a wildcard ('#', '+/...') do not match topic
    names starting with '$'; a filter that names the '$' level does."""
    wild = clients.connected(broker, "c06-wild", version)
    wild.subscribe([("#", 0), ("+/status", 0), ("+/#", 0)])
    dollar = clients.connected(broker, "c06-dollar", version)
    dollar.subscribe("$c06test/#", 0)
    dollar.subscribe("$c06test/+", 0)
    pub = clients.connected(broker, "c06-pub", version)
    for topic in ["$c06test/status", "$c06test/a/b", "plain/status"]:
        pub.publish(topic, topic)
    flush(pub)
    assert [p.topic for p in wild.barrier()] == ["plain/status"]
    # One message per matching subscription set, whichever filters matched (3.1.1 and 5.0
    # both merge overlapping subscriptions here; see the overlap tests).
    assert [p.topic for p in dollar.barrier()] == ["$c06test/status", "$c06test/a/b"]


def test_overlapping_subscriptions_delivered_once_at_highest_qos_v311_MQTT_3_3_5_1(
        broker, clients):
    """[MQTT-3.3.5-1] 3.1.1: when several subscriptions of one client match, the server
    delivers the message once, at the maximum QoS of the matching subscriptions (capped
    by the message's QoS)."""
    sub = clients.connected(broker, "c06-overlap", V311)
    ack = sub.subscribe([("c06/o/#", 0), ("c06/o/+", 2), ("c06/o/x", 1)])
    assert ack.reasons == [0, 2, 1]
    pub = clients.connected(broker, "c06-pub", V311)
    pub.publish("c06/o/x", b"q2", qos=2)
    pub.publish("c06/o/x", b"q1", qos=1)
    pub.publish("c06/o/y/z", b"deep", qos=2)  # matches only the QoS 0 '#' subscription
    flush(pub)
    got = [(p.payload, p.qos) for p in sub.barrier()]
    assert got == [(b"q2", 2), (b"q1", 1), (b"deep", 0)]


def test_overlapping_subscriptions_v5_MQTT_3_3_4_2(broker, clients):
    """[MQTT-3.3.4-2] 5.0: with overlapping subscriptions the delivery respects the highest
    QoS of the matching subscriptions; if the broker merges them into one PUBLISH, it
    carries every matching Subscription Identifier [MQTT-3.3.4-3]."""
    sub = clients.connected(broker, "c06-overlap5", V5)
    sub.subscribe("c06/o5/#", 0, props={Prop.SUBSCRIPTION_IDENTIFIER: 1})
    sub.subscribe("c06/o5/+", 2, props={Prop.SUBSCRIPTION_IDENTIFIER: 2})
    pub = clients.connected(broker, "c06-pub", V5)
    pub.publish("c06/o5/x", b"both", qos=2)
    flush(pub)
    got = sub.barrier()
    assert got and max(p.qos for p in got) == 2, got
    if len(got) == 1:
        assert sorted(got[0].properties.get(Prop.SUBSCRIPTION_IDENTIFIER, [])) == [1, 2], got


@pytest.mark.parametrize("version", VERSIONS)
def test_granted_qos_capped_by_max_qos_MQTT_3_9_3(start_broker, clients, version):
    """limits.max_qos 1: SUBACK grants at most QoS 1 (spec 3.9.3: the server may grant a
    lower QoS than requested), QoS 0 stays 0, and a QoS 1 message arrives at QoS 1."""
    broker = start_broker(config_text="limits:\n  max_qos: 1\n")
    sub = clients.connected(broker, "c06-cap", version)
    ack = sub.subscribe([("c06/cap/2", 2), ("c06/cap/1", 1), ("c06/cap/0", 0)])
    assert ack.reasons == [1, 1, 0], ack
    pub = clients.connected(broker, "c06-pub", version)
    pub.publish("c06/cap/2", b"x", qos=1)
    flush(pub)
    assert [(p.topic, p.qos) for p in sub.barrier()] == [("c06/cap/2", 1)]


@pytest.mark.parametrize("version", VERSIONS)
def test_suback_matches_subscribe_MQTT_3_8_4_1(broker, clients, version):
    """[MQTT-3.8.4-1], [MQTT-3.8.4-2], [MQTT-3.8.4-5] SUBACK carries the SUBSCRIBE's packet
    id and one return code per filter, in order, each the granted QoS."""
    sub = clients.raw(broker, version)
    sub.connect("c06-suback")
    sub.send(subscribe_packet(0x4242, [("c06/s/a", 2), ("c06/s/b", 0), ("c06/s/c", 1)],
                              version))
    ack = sub.recv()
    assert (ack.type, ack.packet_id, ack.reasons) == (SUBACK, 0x4242, [2, 0, 1]), ack


@pytest.mark.parametrize("version", VERSIONS)
def test_resubscribe_replaces_the_subscription_MQTT_3_8_4_3(broker, clients, version):
    """[MQTT-3.8.4-3] Subscribing again to an identical filter replaces the subscription
    (new QoS), and a message is still delivered once."""
    sub = clients.connected(broker, "c06-resub", version)
    sub.subscribe("c06/re", 2)
    assert sub.subscribe("c06/re", 0).reasons == [0]
    pub = clients.connected(broker, "c06-pub", version)
    pub.publish("c06/re", b"once", qos=2)
    flush(pub)
    assert [(p.payload, p.qos) for p in sub.barrier()] == [(b"once", 0)]


@pytest.mark.parametrize("version", VERSIONS)
def test_unsubscribe_stops_delivery_MQTT_3_10_4_1(broker, clients, version):
    """[MQTT-3.10.4-1], [MQTT-3.10.4-4], [MQTT-3.10.4-5] UNSUBSCRIBE is answered with an
    UNSUBACK with its packet id (3.1.1: no payload; 5.0: reason 0x00 per filter), and the
    filter delivers nothing afterwards, while other subscriptions still do."""
    sub = clients.connected(broker, "c06-unsub", version)
    sub.subscribe("c06/u/#", 1)
    sub.subscribe("c06/keep", 1)
    pub = clients.connected(broker, "c06-pub", version)
    assert _delivered(sub, pub, ["c06/u/1"], qos=1) == ["c06/u/1"]

    ack = sub.unsubscribe("c06/u/#", packet_id=0x0707)
    assert (ack.type, ack.packet_id) == (UNSUBACK, 0x0707)
    if version == V5:
        assert ack.reasons == [Reason.SUCCESS], ack
    else:
        assert ack.raw == b"\xb0\x02\x07\x07", ack
    assert _delivered(sub, pub, ["c06/u/1", "c06/u/2", "c06/keep"], qos=1) == ["c06/keep"]


def test_v5_unsuback_no_subscription_existed(broker, clients):
    """5.0 spec 3.11.3: UNSUBACK has one reason code per filter, 0x11 (No subscription
    existed) for a filter the client had not subscribed to."""
    sub = clients.connected(broker, "c06-unsub5", V5)
    sub.subscribe("c06/have", 0)
    ack = sub.unsubscribe(["c06/have", "c06/never", "c06/have"])
    assert ack.reasons == [Reason.SUCCESS, Reason.NO_SUBSCRIPTION_EXISTED,
                           Reason.NO_SUBSCRIPTION_EXISTED], ack


@pytest.mark.parametrize("version", VERSIONS)
def test_subscriptions_are_per_client(broker, clients, version):
    """Two clients with the same filter each get the message; one unsubscribing does not
    affect the other."""
    a = clients.connected(broker, "c06-a", version)
    b = clients.connected(broker, "c06-b", version)
    for c in (a, b):
        c.subscribe("c06/shared", 1)
    a.unsubscribe("c06/shared")
    pub = clients.connected(broker, "c06-pub", version)
    pub.publish("c06/shared", b"x", qos=1)
    flush(pub)
    assert a.barrier() == []
    assert [p.type for p in b.barrier()] == [PUBLISH]


def test_v5_no_local_MQTT_3_8_3_3(broker, clients):
    """5.0 [MQTT-3.8.3-3] With No Local 1 a client's own messages are not sent back to it
    on that subscription; without it they are."""
    c = clients.connected(broker, "c06-nolocal", V5)
    c.subscribe("c06/nl/own", 1, options=0x04)
    c.subscribe("c06/nl/echo", 1)
    c.publish("c06/nl/own", b"not back", qos=1)
    c.publish("c06/nl/echo", b"back", qos=1)
    other = clients.connected(broker, "c06-other", V5)
    other.publish("c06/nl/own", b"from other", qos=1)
    flush(other)
    assert [p.payload for p in c.barrier()] == [b"back", b"from other"]


def test_v5_subscription_identifier_MQTT_3_8_2_1(broker, clients):
    """5.0 spec 3.8.2.1.2, [MQTT-3.3.4-3] A Subscription Identifier given in SUBSCRIBE is
    returned in each PUBLISH that matches that subscription."""
    c = clients.connected(broker, "c06-subid", V5)
    c.subscribe("c06/id/+", 1, props={Prop.SUBSCRIPTION_IDENTIFIER: 77})
    c.subscribe("c06/plain", 1)
    pub = clients.connected(broker, "c06-pub", V5)
    pub.publish("c06/id/x", b"with id", qos=1)
    pub.publish("c06/plain", b"without", qos=1)
    flush(pub)
    got = [(p.payload, p.properties.get(Prop.SUBSCRIPTION_IDENTIFIER)) for p in c.barrier()]
    assert got == [(b"with id", [77]), (b"without", None)]


def _expect_protocol_error(c):
    packets = c.expect_closed()
    assert [(p.type, p.reason) for p in packets] == [(DISCONNECT, Reason.PROTOCOL_ERROR)], packets


def test_v5_subscription_identifier_0_is_a_protocol_error_spec_3_8_2_1_2(broker, clients):
    """5.0 spec 3.8.2.1.2: a Subscription Identifier of 0 in SUBSCRIBE is a Protocol Error
    (DISCONNECT 0x82), and nothing is subscribed."""
    c = clients.connected(broker, "c06-subid0", V5)
    c.send(subscribe_packet(1, [("c06/id0", 1)], V5, props={Prop.SUBSCRIPTION_IDENTIFIER: 0}))
    _expect_protocol_error(c)


def test_v5_publish_with_subscription_identifier_is_a_protocol_error_MQTT_3_3_4_6(broker,
                                                                                 clients):
    """5.0 [MQTT-3.3.4-6] A PUBLISH from a client must not carry a Subscription Identifier:
    DISCONNECT 0x82, and the message reaches no subscriber."""
    sub = clients.connected(broker, "c06-subid-sub", V5)
    sub.subscribe("c06/subid/pub", 1)
    pub = clients.connected(broker, "c06-subid-pub", V5)
    pub.send(publish_packet("c06/subid/pub", b"x", qos=1, packet_id=1, version=V5,
                            props={Prop.SUBSCRIPTION_IDENTIFIER: 5}))
    _expect_protocol_error(pub)
    assert sub.barrier() == []


def test_v5_retain_handling_3_is_a_protocol_error_spec_3_8_3_1(broker, clients):
    """5.0 spec 3.8.3.1: Retain Handling 3 is a Protocol Error (DISCONNECT 0x82)."""
    c = clients.connected(broker, "c06-rh3", V5)
    c.send(subscribe_packet(1, [("c06/rh3", 0x30 | 1)], V5))
    _expect_protocol_error(c)
