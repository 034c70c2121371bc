# SPDX-License-Identifier: Apache-2.0
"""25 per-listener rules for the User Properties of 5.0 PUBLISH packets (spec 3.3.2.3.7):
a count limit, a byte limit and an allow-list of names, each either refusing the message
(PUBACK 0x99 for a name not allowed, DISCONNECT 0x95 above a limit) or stripping what
breaks the rule."""
from mqtt_helpers import DISCONNECT, PUBACK, V5, Prop, Reason, free_ports
from mqtt_helpers import clients  # noqa: F401 (fixture, used by name)

CONFIG = """
listeners:
  - bind: "127.0.0.1:{reject_port}"
    user_properties: {{max_count: 2, max_bytes: 40, allowed_keys: [site, unit], action: reject}}
  - bind: "127.0.0.1:{strip_port}"
    user_properties: {{max_count: 2, max_bytes: 40, allowed_keys: [site, unit], action: strip}}
"""


def start(start_broker):
    reject_port, strip_port = free_ports(2)
    b = start_broker(config_text=CONFIG.format(reject_port=reject_port, strip_port=strip_port),
                     listen=False, expect_listeners=2)
    return b, b.ports.index(reject_port), b.ports.index(strip_port)


def subscriber(b, clients, index):
    sub = clients.raw(b, V5, index=index)
    sub.connect(f"c25-sub{index}")
    sub.subscribe("c25/#", 1)
    return sub


def test_allowed_properties_pass(start_broker, clients):
    """Properties within every rule arrive unchanged, in order."""
    b, reject, _ = start(start_broker)
    sub = subscriber(b, clients, reject)
    pub = clients.raw(b, V5, index=reject)
    pub.connect("c25-ok")
    props = [("site", "42"), ("unit", "C")]
    pub.publish("c25/ok", b"x", qos=1, props={Prop.USER_PROPERTY: props})
    assert sub.receive().properties[Prop.USER_PROPERTY] == props


def test_name_not_allowed_is_refused_with_0x99(start_broker, clients):
    """A property name outside the allow-list: QoS 1 gets PUBACK 0x99 and the message is
    not delivered; the connection stays."""
    b, reject, _ = start(start_broker)
    sub = subscriber(b, clients, reject)
    pub = clients.raw(b, V5, index=reject)
    pub.connect("c25-key")
    pid = pub.publish("c25/key", b"x", qos=1, props={Prop.USER_PROPERTY: [("secret", "1")]},
                      complete=False)
    ack = pub.expect(PUBACK, pid)
    assert ack.reason == 0x99  # Payload format invalid
    assert sub.barrier() == []
    assert pub.barrier() == []  # still connected


def test_too_many_properties_disconnect_with_0x95(start_broker, clients):
    """More properties than max_count on a rejecting listener: DISCONNECT 0x95."""
    b, reject, _ = start(start_broker)
    pub = clients.raw(b, V5, index=reject)
    pub.connect("c25-many")
    pub.publish("c25/many", b"x", qos=1, complete=False,
                props={Prop.USER_PROPERTY: [("site", "1"), ("site", "2"), ("unit", "3")]})
    packets = pub.expect_closed()
    assert [(p.type, p.reason) for p in packets] == [(DISCONNECT, Reason.PACKET_TOO_LARGE)]


def test_strip_keeps_what_fits(start_broker, clients):
    """On a stripping listener, names outside the allow-list are removed and the first
    properties that fit the count and byte limits are kept, in order."""
    b, _, strip = start(start_broker)
    sub = subscriber(b, clients, strip)
    pub = clients.raw(b, V5, index=strip)
    pub.connect("c25-strip")
    props = [("secret", "1"), ("site", "42"), ("unit", "C"), ("site", "43")]
    pub.publish("c25/strip", b"x", qos=1, props={Prop.USER_PROPERTY: props})
    got = sub.receive()
    assert got.properties[Prop.USER_PROPERTY] == [("site", "42"), ("unit", "C")]

    big = [("site", "v" * 30), ("unit", "w" * 30)]
    pub.publish("c25/strip", b"y", qos=1, props={Prop.USER_PROPERTY: big})
    got = sub.receive()
    assert got.properties[Prop.USER_PROPERTY] == [("site", "v" * 30)]
