# SPDX-License-Identifier: Apache-2.0
"""27 problem information: the Reason String (property 0x1F) the broker puts on every 5.0
packet that refuses something, and the client's say over it.

- Every refusing CONNACK, PUBACK, PUBREC, PUBCOMP, PUBREL, SUBACK and every DISCONNECT from
  the broker carries a short Reason String saying what was wrong (spec 3.x.2.2 "Reason
  String").
- A client whose CONNECT had Request Problem Information 0 gets no Reason String or User
  Property on anything but PUBLISH, CONNACK and DISCONNECT [MQTT-3.1.2-29]; CONNACK and
  DISCONNECT keep theirs.
- A Reason String that would make a packet larger than the client's Maximum Packet Size is
  left out, and the packet still goes [MQTT-3.2.2-19], [MQTT-3.4.2-2], [MQTT-3.5.2-2],
  [MQTT-3.7.2-2], [MQTT-3.9.2-1], [MQTT-3.14.2-3].
- 3.1.1 packets have no properties: the same refusals look exactly as before.

Reason Strings are read from the raw bytes (RawClient) and, for SUBACK and DISCONNECT, as
paho-mqtt's MQTT 5.0 client reports them.
"""
import threading

import pytest

from mqtt_helpers import (CONNACK, DISCONNECT, PUBACK, PUBCOMP, PUBREC, PUBREL, SUBACK, V311,
                          V5, Prop, Reason, ack_packet, connect_packet, free_ports,
                          publish_packet, subscribe_packet)
from mqtt_helpers import clients  # noqa: F401 (fixture, used by name)

NO_SHARED = "shared_subscriptions:\n  enabled: false\n"
SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E
TOPIC_ALIAS_INVALID = 0x94
QUIET = {Prop.REQUEST_PROBLEM_INFORMATION: 0}

# Request Problem Information as the CONNECT sends it: absent (default 1), 1, or 0.
RPI = [pytest.param(None, id="rpi-absent"), pytest.param(1, id="rpi-1"),
       pytest.param(0, id="rpi-0")]


def rpi_props(rpi, **more):
    props = dict(more)
    if rpi is not None:
        props[Prop.REQUEST_PROBLEM_INFORMATION] = rpi
    return props


def with_method(rpi):
    """CONNECT properties naming an authentication method the broker does not offer."""
    props = rpi_props(rpi)
    props[Prop.AUTHENTICATION_METHOD] = "KERBEROS"
    return props


def reason_string(packet):
    return packet.properties.get(Prop.REASON_STRING)


# --- acknowledgements: only when the client asked for problem information ----------------


@pytest.mark.parametrize("rpi", RPI)
@pytest.mark.parametrize("qos", [1, 2])
def test_refused_publish_ack_has_a_reason_string_unless_rpi_0_MQTT_3_1_2_29(broker, clients,
                                                                            qos, rpi):
    """A QoS 1/2 PUBLISH to $SYS/... is refused with 0x87 (Not authorized). The PUBACK or
    PUBREC says why in its Reason String [MQTT-3.4.2-2], [MQTT-3.5.2-2]; with Request
    Problem Information 0 the ack carries no properties at all [MQTT-3.1.2-29]."""
    c = clients.connected(broker, f"c27-sys-{qos}", V5, props=rpi_props(rpi))
    pid = c.publish("$SYS/c27/fake", b"1", qos=qos, complete=False)
    ack = c.expect(PUBACK if qos == 1 else PUBREC, pid)
    assert ack.reason == Reason.NOT_AUTHORIZED, ack
    if rpi == 0:
        assert ack.properties == {}, ack
    else:
        assert "$SYS" in reason_string(ack), ack
    assert c.barrier() == []  # a refusal, not a disconnection


@pytest.mark.parametrize("rpi", RPI)
def test_refused_user_property_name_has_a_reason_string_unless_rpi_0_MQTT_3_1_2_29(
        start_broker, clients, rpi):
    """A User Property name outside the listener's allow-list: PUBACK 0x99 (Payload format
    invalid) explains itself unless the client set Request Problem Information 0."""
    port, = free_ports(1)
    b = start_broker(config_text=f"listeners:\n  - bind: \"127.0.0.1:{port}\"\n"
                                 "    user_properties: {allowed_keys: [site]}\n", listen=False)
    c = clients.connected(b, "c27-key", V5, props=rpi_props(rpi))
    pid = c.publish("c27/key", b"x", qos=1, props={Prop.USER_PROPERTY: [("secret", "1")]},
                    complete=False)
    ack = c.expect(PUBACK, pid)
    assert ack.reason == 0x99, ack
    if rpi == 0:
        assert ack.properties == {}, ack
    else:
        assert "User Property" in reason_string(ack), ack


@pytest.mark.parametrize("rpi", RPI)
def test_pubrel_for_unknown_packet_id_reason_string_unless_rpi_0_MQTT_3_1_2_29(broker, clients,
                                                                               rpi):
    """PUBREL for a packet id with no QoS 2 flow: PUBCOMP 0x92 (Packet Identifier not
    found) with a Reason String [MQTT-3.7.2-2], none with Request Problem Information 0."""
    c = clients.connected(broker, "c27-pubrel", V5, props=rpi_props(rpi))
    c.send(ack_packet(PUBREL, 4242, V5))
    comp = c.expect(PUBCOMP, 4242)
    assert comp.reason == Reason.PACKET_IDENTIFIER_NOT_FOUND, comp
    if rpi == 0:
        assert comp.properties == {}, comp
    else:
        assert "Packet Identifier" in reason_string(comp), comp


@pytest.mark.parametrize("rpi", RPI)
def test_pubrec_for_unknown_packet_id_reason_string_unless_rpi_0_MQTT_3_1_2_29(broker, clients,
                                                                               rpi):
    """PUBREC for a packet id the broker never sent: PUBREL 0x92 with a Reason String
    [MQTT-3.6.2-2], none with Request Problem Information 0."""
    c = clients.connected(broker, "c27-pubrec", V5, props=rpi_props(rpi))
    c.send(ack_packet(PUBREC, 4243, V5))
    rel = c.expect(PUBREL, 4243)
    assert rel.reason == Reason.PACKET_IDENTIFIER_NOT_FOUND, rel
    if rpi == 0:
        assert rel.properties == {}, rel
    else:
        assert "Packet Identifier" in reason_string(rel), rel


@pytest.mark.parametrize("rpi", RPI)
def test_refused_subscription_suback_has_one_reason_string_unless_rpi_0_MQTT_3_1_2_29(
        start_broker, clients, rpi):
    """Shared subscriptions turned off: SUBACK 0x9E for both $share filters, 1 for the
    plain one, and one Reason String for the whole packet [MQTT-3.9.2-1]; none with
    Request Problem Information 0."""
    b = start_broker(config_text=NO_SHARED)
    c = clients.connected(b, "c27-suback", V5, props=rpi_props(rpi))
    ack = c.subscribe([("$share/g/c27/a", 1), ("c27/b", 1), ("$share/g/c27/c", 0)])
    assert ack.reasons == [SHARED_SUBSCRIPTIONS_NOT_SUPPORTED, 1,
                           SHARED_SUBSCRIPTIONS_NOT_SUPPORTED], ack
    if rpi == 0:
        assert ack.properties == {}, ack
    else:
        assert "shared subscriptions" in reason_string(ack), ack


def test_successful_acks_carry_no_reason_string(broker, clients):
    """Success needs no explanation: PUBACK, SUBACK and UNSUBACK of a default client come
    without properties."""
    c = clients.connected(broker, "c27-ok", V5)
    assert c.subscribe("c27/ok", 1).properties == {}
    c.publish("c27/ok", b"x", qos=1, complete=False)
    assert c.expect(PUBACK).properties == {}
    assert c.receive().payload == b"x"
    assert c.unsubscribe("c27/ok").properties == {}


# --- CONNACK and DISCONNECT: always allowed --------------------------------------------


@pytest.mark.parametrize("rpi", RPI)
def test_disconnect_keeps_its_reason_string_even_with_rpi_0_MQTT_3_1_2_29(broker, clients,
                                                                         rpi):
    """A protocol error (Topic Alias 0) is answered with DISCONNECT 0x94 whose Reason String
    says what was wrong, whatever the client's Request Problem Information [MQTT-3.1.2-29]
    (spec 3.14.2.2.3)."""
    c = clients.connected(broker, "c27-alias0", V5, props=rpi_props(rpi))
    c.send(publish_packet("c27/a", b"x", version=V5, props={Prop.TOPIC_ALIAS: 0}))
    packets = c.expect_closed()
    assert [(p.type, p.reason) for p in packets] == [(DISCONNECT, TOPIC_ALIAS_INVALID)], packets
    assert "Topic Alias is 0" in reason_string(packets[0]), packets


@pytest.mark.parametrize("rpi", RPI)
def test_disconnect_for_session_expiry_after_0_says_why_MQTT_3_14_2_2(broker, clients, rpi):
    """DISCONNECT with a Session Expiry Interval after CONNECT had 0 is a Protocol Error;
    the broker's DISCONNECT 0x82 names it, also with Request Problem Information 0."""
    c = clients.connected(broker, "c27-expiry", V5, props=rpi_props(rpi))
    packets = c.disconnect(props={Prop.SESSION_EXPIRY_INTERVAL: 30})
    assert [(p.type, p.reason) for p in packets] == [(DISCONNECT, Reason.PROTOCOL_ERROR)]
    assert "Session Expiry Interval" in reason_string(packets[0]), packets


@pytest.mark.parametrize("rpi", RPI)
def test_refused_connack_keeps_its_reason_string_even_with_rpi_0_MQTT_3_1_2_29(broker, clients,
                                                                              rpi):
    """An authentication method the broker does not offer: CONNACK 0x8C with a Reason
    String, whatever Request Problem Information says [MQTT-3.1.2-29] (spec 3.2.2.3.9)."""
    c = clients.raw(broker, V5)
    c.send(connect_packet("c27-method", V5, props=with_method(rpi)))
    packets = c.expect_closed()
    assert [(p.type, p.reason) for p in packets] == [(CONNACK, Reason.BAD_AUTHENTICATION_METHOD)]
    assert "authentication method" in reason_string(packets[0]), packets


def test_request_problem_information_2_is_a_protocol_error_spec_3_1_2_11_7(broker, clients):
    """Request Problem Information other than 0 or 1 is a Protocol Error (spec 3.1.2.11.7):
    the connection is not accepted, it is closed [MQTT-3.1.4-2]."""
    c = clients.raw(broker, V5)
    c.send(connect_packet("c27-rpi2", V5, props={Prop.REQUEST_PROBLEM_INFORMATION: 2}))
    packets = c.expect_closed()
    assert all(p.type == CONNACK and p.reason == Reason.PROTOCOL_ERROR for p in packets), \
        packets


def test_successful_connack_has_no_reason_string(broker, clients):
    c = clients.raw(broker, V5)
    assert Prop.REASON_STRING not in c.connect("c27-welcome").properties


# --- the client's Maximum Packet Size ------------------------------------------------


def _sys_puback(b, clients, client_id, props):
    c = clients.connected(b, client_id, V5, props=props)
    pid = c.publish("$SYS/c27/size", b"1", qos=1, complete=False)
    ack = c.expect(PUBACK, pid)
    assert ack.reason == Reason.NOT_AUTHORIZED, ack
    return c, ack


def test_reason_string_left_out_above_maximum_packet_size_MQTT_3_4_2_2(broker, clients):
    """The PUBACK with its Reason String is N bytes. A client whose Maximum Packet Size is
    N still gets it; one whose maximum is N - 1 gets the PUBACK 0x87 without it
    [MQTT-3.4.2-2], and stays connected."""
    _, full = _sys_puback(broker, clients, "c27-size-ref", {})
    size = len(full.raw)
    assert reason_string(full) and size > 5
    _, fits = _sys_puback(broker, clients, "c27-size-fits", {Prop.MAXIMUM_PACKET_SIZE: size})
    assert fits.raw == full.raw
    c, bare = _sys_puback(broker, clients, "c27-size-over",
                          {Prop.MAXIMUM_PACKET_SIZE: size - 1})
    assert bare.properties == {} and len(bare.raw) < size, bare
    assert c.barrier() == []


def test_disconnect_reason_string_left_out_above_maximum_packet_size_MQTT_3_14_2_3(broker,
                                                                                  clients):
    """A DISCONNECT that would exceed the client's Maximum Packet Size with its Reason
    String goes without it [MQTT-3.14.2-3]; the reason code is still 0x94."""
    c = clients.connected(broker, "c27-size-disc", V5, props={Prop.MAXIMUM_PACKET_SIZE: 8})
    c.send(publish_packet("c27/a", b"x", version=V5, props={Prop.TOPIC_ALIAS: 0}))
    packets = c.expect_closed()
    assert [(p.type, p.reason, p.properties) for p in packets] == \
        [(DISCONNECT, TOPIC_ALIAS_INVALID, {})], packets
    assert len(packets[0].raw) <= 8


def test_connack_reason_string_left_out_above_maximum_packet_size_MQTT_3_2_2_19(broker,
                                                                               clients):
    """A refusing CONNACK too large for the client's Maximum Packet Size with its Reason
    String goes without it [MQTT-3.2.2-19]."""
    c = clients.raw(broker, V5)
    props = with_method(None)
    props[Prop.MAXIMUM_PACKET_SIZE] = 10
    c.send(connect_packet("c27-size-connack", V5, props=props))
    packets = c.expect_closed()
    assert [(p.type, p.reason, p.properties) for p in packets] == \
        [(CONNACK, Reason.BAD_AUTHENTICATION_METHOD, {})], packets


# --- 3.1.1 clients ----------------------------------------------------------------------


def test_v311_refusals_are_unchanged(start_broker, clients):
    """3.1.1 has no properties: PUBACK for a $SYS publish, SUBACK 0x80 for a shared filter
    when they are off, and PUBCOMP for an unknown PUBREL are the plain 3.1.1 packets, and a
    protocol error closes without a byte."""
    b = start_broker(config_text=NO_SHARED)
    c = clients.connected(b, "c27-v311", V311)
    c.send(publish_packet("$SYS/c27/x", b"1", qos=1, packet_id=7))
    assert c.expect(PUBACK, 7).raw == b"\x40\x02\x00\x07"
    c.send(subscribe_packet(8, [("$share/g/c27/x", 1)]))
    assert c.expect(SUBACK, 8).raw == b"\x90\x03\x00\x08\x80"
    c.send(ack_packet(PUBREL, 9))
    assert c.expect(PUBCOMP, 9).raw == b"\x70\x02\x00\x09"
    c.send(publish_packet("c27/+", b"x"))  # wildcard in a topic name
    assert c.expect_closed() == []


# --- a real client ----------------------------------------------------------------------


def test_paho_sees_reason_strings_on_suback_and_disconnect(start_broker, clients):
    """paho-mqtt's MQTT 5.0 client reads the Reason String of a refusing SUBACK and of the
    broker's DISCONNECT (a Topic Alias above the maximum: 0x94) from its callbacks."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    b = start_broker(config_text=NO_SHARED)
    c = clients.paho(b, "c27-paho", V5)
    got = {}
    done = threading.Event()

    def on_subscribe(client, userdata, mid, reason_codes, properties):
        got["suback"] = ([int(r.value) for r in reason_codes], properties)
        done.set()

    c.client.on_subscribe = on_subscribe
    c.client.subscribe("$share/g/c27/p", 1)
    assert done.wait(c.timeout), "no SUBACK"
    codes, props = got["suback"]
    assert codes == [SHARED_SUBSCRIPTIONS_NOT_SUPPORTED]
    assert "shared subscriptions" in props.ReasonString

    over = Properties(PacketTypes.PUBLISH)
    over.TopicAlias = 11  # the broker's maximum is 10
    c.client.publish("c27/p", b"x", qos=0, properties=over)
    assert c.wait_disconnected() == TOPIC_ALIAS_INVALID
    assert "Topic Alias" in c.disconnect_properties.ReasonString
