# SPDX-License-Identifier: Apache-2.0
"""23 message properties (MQTT 5.0, spec 3.3.2.3): what a publisher attaches reaches every
5.0 subscriber unchanged (user properties in order with duplicates, request/response
properties, content type, payload format), through retained messages too; the Message
Expiry Interval is forwarded as the time left, and expired messages are not delivered;
3.1.1 subscribers get the same message without properties."""
from mqtt_helpers import (CONNACK, DISCONNECT, V311, V5, Prop, Reason, connect_packet, frame,
                          properties, utf8)
from mqtt_helpers import clients  # noqa: F401 (fixture, used by name)

MESSAGE_PROPS = {
    Prop.PAYLOAD_FORMAT_INDICATOR: 1,
    Prop.CONTENT_TYPE: "application/json",
    Prop.RESPONSE_TOPIC: "reply/c23",
    Prop.CORRELATION_DATA: b"\x00\x01corr",
    Prop.USER_PROPERTY: [("site", "42"), ("unit", "C"), ("site", "43")],
}


def forwarded(props):
    """The properties a subscriber should see, without per-hop ones."""
    return {k: v for k, v in props.items()
            if k not in (Prop.TOPIC_ALIAS, Prop.SUBSCRIPTION_IDENTIFIER)}


def test_properties_reach_subscribers_unchanged_MQTT_3_3_2_17(broker, clients):
    """[MQTT-3.3.2-17/18] User properties keep their order and duplicates;
    [MQTT-3.3.2-15/16] Response Topic and Correlation Data are passed on unaltered;
    [MQTT-3.3.2-4] Payload Format Indicator and [MQTT-3.3.2-20] Content Type likewise.
    A 3.1.1 subscriber receives the same message with no properties."""
    sub5 = clients.raw(broker, V5)
    sub5.connect("c23-sub5")
    sub5.subscribe("c23/props", 1)
    sub3 = clients.raw(broker, V311)
    sub3.connect("c23-sub3")
    sub3.subscribe("c23/props", 1)
    pub = clients.raw(broker, V5)
    pub.connect("c23-pub")
    pub.publish("c23/props", b'{"t": 21.5}', qos=1, props=MESSAGE_PROPS)

    got5 = sub5.receive()
    assert got5.payload == b'{"t": 21.5}'
    assert forwarded(got5.properties) == MESSAGE_PROPS
    got3 = sub3.receive()
    assert (got3.topic, got3.payload) == ("c23/props", b'{"t": 21.5}')


def test_retained_message_keeps_its_properties_MQTT_3_3_1_9(broker, clients):
    """A retained message delivered on subscribe carries the properties it was published
    with."""
    pub = clients.raw(broker, V5)
    pub.connect("c23-rpub")
    pub.publish("c23/retained", b"kept", qos=1, retain=True, props=MESSAGE_PROPS)
    sub = clients.raw(broker, V5)
    sub.connect("c23-rsub")
    sub.subscribe("c23/retained", 1)
    got = sub.receive()
    assert got.retain and got.payload == b"kept"
    assert forwarded(got.properties) == MESSAGE_PROPS


def test_message_expiry_is_forwarded_as_time_left_MQTT_3_3_2_6(broker, clients):
    """[MQTT-3.3.2-6] The Message Expiry Interval a subscriber receives is what is left of
    the publisher's interval (never more)."""
    sub = clients.raw(broker, V5)
    sub.connect("c23-esub")
    sub.subscribe("c23/expiry", 1)
    pub = clients.raw(broker, V5)
    pub.connect("c23-epub")
    pub.publish("c23/expiry", b"x", qos=1, props={Prop.MESSAGE_EXPIRY_INTERVAL: 120})
    got = sub.receive()
    assert 0 < got.properties[Prop.MESSAGE_EXPIRY_INTERVAL] <= 120


def test_expired_retained_message_is_not_delivered_MQTT_3_3_2_5(start_broker, clients):
    """[MQTT-3.3.2-5] A retained message whose expiry has passed is not sent to a new
    subscriber; one that has not expired is. The wait is bounded by the session-expiry
    housekeeping line the broker logs each second."""
    b = start_broker("--log-level", "debug")
    pub = clients.raw(b, V5)
    pub.connect("c23-xpub")
    pub.publish("c23/short", b"gone", qos=1, retain=True,
                props={Prop.MESSAGE_EXPIRY_INTERVAL: 1})
    pub.publish("c23/long", b"here", qos=1, retain=True,
                props={Prop.MESSAGE_EXPIRY_INTERVAL: 600})
    # Let the 1 s interval run out: a throwaway persistent session with a 1 s expiry ends
    # on the broker's clock after at least as long, and the broker logs it.
    probe = clients.raw(b, V5)
    probe.connect("c23-clock", clean=True, session_expiry=1)
    probe.close()
    b.wait_for_log(r"session c23-clock expired", timeout=10)
    sub = clients.raw(b, V5)
    sub.connect("c23-xsub")
    sub.subscribe("c23/#", 1)
    got = sub.receive()
    assert (got.topic, got.payload) == ("c23/long", b"here")
    assert sub.barrier() == []


def test_wildcard_in_response_topic_is_a_protocol_error_MQTT_3_3_2_14(broker, clients):
    """[MQTT-3.3.2-14] The Response Topic is a topic name: a wildcard in it is a protocol
    error (DISCONNECT 0x82)."""
    pub = clients.raw(broker, V5)
    pub.connect("c23-wild")
    pub.publish("c23/req", b"x", qos=0, props={Prop.RESPONSE_TOPIC: "reply/+"})
    packets = pub.expect_closed()
    assert [(p.type, p.reason) for p in packets] == [(DISCONNECT, Reason.PROTOCOL_ERROR)]


RESPONSE_CONFIG = """
request_response:
  response_information: "reply/{client_id}/"
"""


def test_response_information_on_request_MQTT_3_1_2_28(start_broker, clients):
    """A client that sets Request Response Information 1 gets Response Information in
    CONNACK (the configured prefix with its client id); one that does not ask, or asks with
    0, gets none [MQTT-3.1.2-28]."""
    b = start_broker(config_text=RESPONSE_CONFIG)
    asking = clients.raw(b, V5)
    ack = asking.connect("c23-req", props={Prop.REQUEST_RESPONSE_INFORMATION: 1})
    assert ack.properties[Prop.RESPONSE_INFORMATION] == "reply/c23-req/"
    for props in ({}, {Prop.REQUEST_RESPONSE_INFORMATION: 0}):
        quiet = clients.raw(b, V5)
        ack = quiet.connect("c23-quiet", props=props)
        assert Prop.RESPONSE_INFORMATION not in ack.properties


def test_no_response_information_by_default(broker, clients):
    """Without a configured prefix the broker sends no Response Information (it may)."""
    c = clients.raw(broker, V5)
    ack = c.connect("c23-default", props={Prop.REQUEST_RESPONSE_INFORMATION: 1})
    assert Prop.RESPONSE_INFORMATION not in ack.properties


def test_request_response_information_above_1_is_a_protocol_error_spec_3_1_2_11_6(broker,
                                                                                  clients):
    """Request Response Information other than 0 or 1 is a Protocol Error (spec
    3.1.2.11.6): the connection is not accepted, it is closed [MQTT-3.1.4-2]."""
    c = clients.raw(broker, V5)
    c.send(connect_packet("c23-bad", V5, props={Prop.REQUEST_RESPONSE_INFORMATION: 2}))
    packets = c.expect_closed()
    assert all(p.type == CONNACK and p.reason == Reason.PROTOCOL_ERROR for p in packets), \
        packets


def test_message_expiry_interval_twice_is_a_protocol_error_spec_3_3_2_3_3(broker, clients):
    """A PUBLISH with two Message Expiry Intervals is a Protocol Error (spec 3.3.2.3.3):
    DISCONNECT 0x82, and nothing is delivered."""
    sub = clients.connected(broker, "c23-twice-sub", V5)
    sub.subscribe("c23/twice", 0)
    pub = clients.connected(broker, "c23-twice-pub", V5)
    one = properties({Prop.MESSAGE_EXPIRY_INTERVAL: 10})[1:]  # a block without its length
    pub.send(frame(0x30, utf8("c23/twice") + bytes([2 * len(one)]) + one + one + b"x"))
    packets = pub.expect_closed()
    assert [(p.type, p.reason) for p in packets] == [(DISCONNECT, Reason.PROTOCOL_ERROR)]
    assert sub.barrier() == []
