# SPDX-License-Identifier: Apache-2.0
"""20 shared: shared subscriptions, "$share/{group}/{filter}" (MQTT 5.0 spec 4.8.2), which
ferrymq also accepts from 3.1.1 clients, with the `shared_subscriptions:` keys that drive
them (src/broker/shared_subscriptions.cpp, Broker::route and Broker::hand_over_shared):

- each message matching the filter goes to exactly one member of the group, chosen by
  `strategy`: round_robin (exact turns), random, sticky, hash_client, hash_topic;
- members whose client is connected are chosen first; with none, a QoS 1 message waits in
  one member's session;
- a member that disconnects hands its queued and unacknowledged QoS 1 messages to another
  member; a QoS 2 message already sent stays with it [MQTT-4.8.2-4];
- no retained messages on a shared subscription (spec 4.8.2; [MQTT-3.3.1-9] is about
  Non-shared Subscriptions);
- `enabled: false`: CONNACK Shared Subscription Available 0, SUBACK 0x9E (3.1.1: 0x80);
- No Local on a shared subscription is a Protocol Error [MQTT-3.8.3-4].

Negative checks use round trips (flush, barrier), not waits, as in test_06_subscribe.py.
"""
import pytest

from mqtt_helpers import (DISCONNECT, V311, V5, VERSIONS, Prop, Reason, flush, persistent,
                          subscribe_packet)
from mqtt_helpers import clients  # noqa: F401 (fixture, used by name)

SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E
TOPIC_FILTER_INVALID = 0x8F


def strategy_config(strategy):
    return f"shared_subscriptions:\n  strategy: {strategy}\n"


def members(clients, broker, version, count, topic_filter, qos=1, prefix="c20-m"):
    """`count` connected clients, each subscribed to `topic_filter` (in this order)."""
    out = []
    for i in range(count):
        c = clients.connected(broker, f"{prefix}{i}", version)
        ack = c.subscribe(topic_filter, qos)
        assert ack.reasons == [qos], ack
        out.append(c)
    return out


def received(subscribers, **barrier):
    """The payloads (decoded) each subscriber received, after a PINGREQ round trip each."""
    return [[p.payload.decode() for p in s.barrier(**barrier)] for s in subscribers]


def assert_each_exactly_once(per_member, sent):
    everything = [m for got in per_member for m in got]
    assert sorted(everything) == sorted(sent), per_member


@pytest.mark.parametrize("version", VERSIONS)
def test_round_robin_exact_distribution_spec_4_8_2(broker, clients, version):
    """Spec 4.8.2: a message matching a Shared Subscription goes to one member. The default
    round_robin takes the members in turn, in the order they subscribed: 12 messages over 3
    members are 4 each, member k getting messages k, k+3, k+6, k+9."""
    group = members(clients, broker, version, 3, "$share/c20rr/c20/rr/+")
    pub = clients.connected(broker, "c20-pub", version)
    sent = [str(i) for i in range(12)]
    for i, payload in enumerate(sent):
        pub.publish(f"c20/rr/{i % 4}", payload, qos=1)
    flush(pub)
    per_member = received(group)
    assert per_member == [[str(k + 3 * j) for j in range(4)] for k in range(3)]
    assert_each_exactly_once(per_member, sent)


@pytest.mark.parametrize("version", VERSIONS)
def test_paho_members_each_message_to_exactly_one_spec_4_8_2(broker, clients, version):
    """With a real client library (paho-mqtt) as members and publisher, alongside an
    ordinary subscriber: the ordinary subscriber gets every message, the group members
    together get every message exactly once."""
    group = [clients.paho(broker, f"c20-paho{i}", version) for i in range(3)]
    for m in group:
        assert m.subscribe("$share/c20paho/c20/paho/#", 1) == [1]
    everyone = clients.paho(broker, "c20-all", version)
    assert everyone.subscribe("c20/paho/#", 1) == [1]
    pub = clients.paho(broker, "c20-paho-pub", version)
    sent = [f"m{i}" for i in range(30)]
    for payload in sent:
        pub.publish("c20/paho/x", payload, qos=1)
    assert sorted(m.payload.decode() for m in everyone.expect_messages(30)) == sorted(sent)
    # Round robin: 10 each; each one's messages arrive in publish order.
    per_member = [[m.payload.decode() for m in c.expect_messages(10)] for c in group]
    assert_each_exactly_once(per_member, sent)
    for got in per_member:
        assert got == sorted(got, key=lambda p: int(p[1:])), per_member


@pytest.mark.parametrize("version", VERSIONS)
def test_random_strategy_reaches_every_member_once_per_message(start_broker, clients, version):
    """strategy random: every message to exactly one member, every member gets a fair
    share (300 messages over 3 members: about 100 each, far above 50 with any sane RNG)."""
    broker = start_broker(config_text=strategy_config("random"))
    group = members(clients, broker, version, 3, "$share/c20rnd/c20/rnd", qos=0)
    pub = clients.connected(broker, "c20-pub", version)
    sent = [str(i) for i in range(300)]
    for payload in sent:
        pub.publish("c20/rnd", payload)
    flush(pub)
    per_member = received(group)
    assert_each_exactly_once(per_member, sent)
    assert all(len(got) > 50 for got in per_member), [len(got) for got in per_member]


@pytest.mark.parametrize("version", VERSIONS)
def test_sticky_strategy_keeps_one_member_until_it_leaves(start_broker, clients, version):
    """strategy sticky: all messages go to one member; when it disconnects, all further
    messages go to one other member."""
    broker = start_broker(config_text=strategy_config("sticky"))
    group = members(clients, broker, version, 3, "$share/c20st/c20/st")
    pub = clients.connected(broker, "c20-pub", version)
    for i in range(10):
        pub.publish("c20/st", f"a{i}", qos=1)
    flush(pub)
    per_member = received(group)
    chosen = [i for i, got in enumerate(per_member) if got]
    assert len(chosen) == 1 and len(per_member[chosen[0]]) == 10, per_member
    group[chosen[0]].disconnect()
    rest = [c for i, c in enumerate(group) if i != chosen[0]]
    for i in range(10):
        pub.publish("c20/st", f"b{i}", qos=1)
    flush(pub)
    per_member = received(rest)
    assert sorted(len(got) for got in per_member) == [0, 10], per_member


@pytest.mark.parametrize("version", VERSIONS)
def test_hash_client_strategy_one_member_per_publisher(start_broker, clients, version):
    """strategy hash_client: all messages of one publisher go to one member, in order;
    different publishers spread over the members."""
    broker = start_broker(config_text=strategy_config("hash_client"))
    group = members(clients, broker, version, 3, "$share/c20hc/c20/hc/#")
    publishers = [clients.connected(broker, f"c20-hc-pub{p}", version) for p in range(8)]
    for i in range(4):
        for p, pub in enumerate(publishers):
            pub.publish(f"c20/hc/{i}", f"{p}:{i}", qos=1)
    flush(*publishers)
    per_member = received(group)
    assert_each_exactly_once(per_member, [f"{p}:{i}" for p in range(8) for i in range(4)])
    owner = {}
    for k, got in enumerate(per_member):
        for payload in got:
            owner.setdefault(payload.split(":")[0], set()).add(k)
    assert all(len(ks) == 1 for ks in owner.values()), per_member
    for got in per_member:
        for p in {payload.split(":")[0] for payload in got}:
            mine = [payload for payload in got if payload.startswith(f"{p}:")]
            assert mine == [f"{p}:{i}" for i in range(4)], got
    assert len([got for got in per_member if got]) >= 2, per_member


@pytest.mark.parametrize("version", VERSIONS)
def test_hash_topic_strategy_one_member_per_topic(start_broker, clients, version):
    """strategy hash_topic: all messages on one topic go to one member, whoever publishes;
    different topics spread over the members."""
    broker = start_broker(config_text=strategy_config("hash_topic"))
    group = members(clients, broker, version, 3, "$share/c20ht/c20/ht/+")
    pubs = [clients.connected(broker, f"c20-ht-pub{p}", version) for p in range(2)]
    sent = []
    for t in range(8):
        for p, pub in enumerate(pubs):
            payload = f"{t}:{p}"
            pub.publish(f"c20/ht/{t}", payload, qos=1)
            sent.append(payload)
    flush(*pubs)
    per_member = received(group)
    assert_each_exactly_once(per_member, sent)
    owner = {}
    for k, got in enumerate(per_member):
        for payload in got:
            owner.setdefault(payload.split(":")[0], set()).add(k)
    assert all(len(ks) == 1 for ks in owner.values()), per_member
    assert len([got for got in per_member if got]) >= 2, per_member


@pytest.mark.parametrize("version", VERSIONS)
def test_unacked_qos1_redelivered_when_member_drops_spec_4_8_2(broker, clients, version):
    """Spec 4.8.2: when the connection of the member chosen for a QoS 1 message breaks
    before it acknowledged it, the server may send it to another member. ferrymq does so at
    once, as new messages (DUP 0), and counts them in the stop log."""
    a, b = members(clients, broker, version, 2, "$share/c20re/c20/re")
    pub = clients.connected(broker, "c20-pub", version)
    for i in range(6):
        pub.publish("c20/re", str(i), qos=1)
    flush(pub)
    assert [p.payload for p in a.barrier(ack=False)] == [b"0", b"2", b"4"]
    assert [p.payload for p in b.barrier()] == [b"1", b"3", b"5"]
    a.drop()
    handed = [b.receive() for _ in range(3)]
    assert [(p.payload, p.dup, p.qos) for p in handed] == [
        (b"0", False, 1), (b"2", False, 1), (b"4", False, 1)]
    assert b.barrier() == []
    assert broker.stop() == 0
    assert "shared subscriptions: 6 deliveries, 3 handed over" in broker.log_text()


@pytest.mark.parametrize("version", VERSIONS)
def test_persistent_member_hands_over_and_keeps_its_session(broker, clients, version):
    """A member with a persistent session that drops: its unacknowledged QoS 1 message goes
    to the other member at once, so when it comes back its session is present but holds
    nothing to resend (the [MQTT-4.4.0-1] resend covers only what is still in the
    session)."""
    a = clients.connected(broker, "c20-pa", version, **persistent(version))
    a.subscribe("$share/c20p/c20/p", 1)
    b = clients.connected(broker, "c20-pb", version)
    b.subscribe("$share/c20p/c20/p", 1)
    pub = clients.connected(broker, "c20-pub", version)
    pub.publish("c20/p", b"x", qos=1)
    flush(pub)
    assert [p.payload for p in a.barrier(ack=False)] == [b"x"]
    a.drop()
    assert b.receive().payload == b"x"
    again = clients.raw(broker, version)
    ack = again.connect("c20-pa", **persistent(version))
    assert ack.session_present
    assert again.barrier() == []


@pytest.mark.parametrize("version", VERSIONS)
def test_qos2_in_flight_stays_with_its_member_MQTT_4_8_2_4(broker, clients, version):
    """[MQTT-4.8.2-4] A QoS 2 message the server was sending when the chosen member's
    connection broke is completed with that member when it reconnects, not sent to another
    member."""
    a = clients.connected(broker, "c20-q2a", version, **persistent(version))
    a.subscribe("$share/c20q2/c20/q2", 2)
    b = clients.connected(broker, "c20-q2b", version)
    b.subscribe("$share/c20q2/c20/q2", 2)
    pub = clients.connected(broker, "c20-pub", version)
    pub.publish("c20/q2", b"two", qos=2)
    flush(pub)
    first = a.barrier(ack=False)
    assert [p.payload for p in first] == [b"two"]
    a.drop()
    again = clients.raw(broker, version)
    assert again.connect("c20-q2a", **persistent(version)).session_present
    resent = again.receive()
    assert (resent.payload, resent.dup, resent.packet_id) == (b"two", True, first[0].packet_id)
    assert b.barrier() == []


@pytest.mark.parametrize("version", VERSIONS)
def test_offline_members_skipped_and_all_offline_queue_to_one(broker, clients, version):
    """Members whose client is offline are skipped while another is online; with all of
    them offline a QoS 1 message waits in exactly one member's session and QoS 0 is
    dropped."""
    ids = ["c20-off0", "c20-off1"]
    group = []
    for client_id in ids:
        c = clients.connected(broker, client_id, version, **persistent(version))
        c.subscribe("$share/c20off/c20/off", 1)
        group.append(c)
    group[0].disconnect()
    pub = clients.connected(broker, "c20-pub", version)
    for i in range(4):
        pub.publish("c20/off", f"on{i}", qos=1)
    flush(pub)
    assert [p.payload.decode() for p in group[1].barrier()] == [f"on{i}" for i in range(4)]
    group[1].disconnect()
    pub.publish("c20/off", "queued", qos=1)
    pub.publish("c20/off", "dropped", qos=0)
    flush(pub)
    got = []
    for client_id in ids:
        c = clients.raw(broker, version)
        c.connect(client_id, **persistent(version))
        got += [p.payload for p in c.barrier()]
    assert got == [b"queued"]


@pytest.mark.parametrize("version", VERSIONS)
def test_no_retained_messages_on_shared_subscribe_spec_4_8_2(broker, clients, version):
    """Spec 4.8.2: retained messages are not sent when a session makes a Shared
    Subscription (the [MQTT-3.3.1-9] duty is for Non-shared Subscriptions, which still get
    them)."""
    pub = clients.connected(broker, "c20-pub", version)
    pub.publish("c20/ret/a", b"kept", qos=1, retain=True)
    sub = clients.connected(broker, "c20-ret", version)
    sub.subscribe("$share/c20ret/c20/ret/#", 1)
    assert sub.barrier() == []
    sub.subscribe("c20/ret/#", 1)
    got = sub.barrier()
    assert [(p.payload, p.retain) for p in got] == [(b"kept", True)]


def test_connack_shared_subscription_available_v5(broker, clients):
    """CONNACK's Shared Subscription Available is 1 by default (spec 3.2.2.3.15)."""
    c = clients.raw(broker, V5)
    ack = c.connect("c20-avail")
    assert ack.properties.get(Prop.SHARED_SUBSCRIPTION_AVAILABLE) == 1


@pytest.mark.parametrize("version", VERSIONS)
def test_disabled_refuses_shared_subscribe_0x9E(start_broker, clients, version):
    """shared_subscriptions.enabled false: CONNACK says Shared Subscription Available 0
    (5.0), and SUBSCRIBE to $share/... gets 0x9E (Shared Subscriptions not supported; 3.1.1
    has only 0x80, Failure) while other filters in the same SUBSCRIBE are granted."""
    broker = start_broker(config_text="shared_subscriptions:\n  enabled: false\n")
    c = clients.raw(broker, version)
    ack = c.connect("c20-off")
    if version == V5:
        assert ack.properties.get(Prop.SHARED_SUBSCRIPTION_AVAILABLE) == 0
    suback = c.subscribe([("$share/g/c20/x", 1), ("c20/x", 1)])
    refused = SHARED_SUBSCRIPTIONS_NOT_SUPPORTED if version == V5 else Reason.UNSPECIFIED_ERROR
    assert suback.reasons == [refused, 1]


def test_no_local_on_shared_subscription_is_protocol_error_MQTT_3_8_3_4(broker, clients):
    """[MQTT-3.8.3-4] No Local 1 on a Shared Subscription is a Protocol Error: DISCONNECT
    0x82 and the connection is closed."""
    c = clients.raw(broker, V5)
    c.connect("c20-nolocal")
    c.send(subscribe_packet(1, [("$share/g/c20/nl", 0x04 | 1)], V5))
    packets = c.expect_closed()
    assert [(p.type, p.reason) for p in packets] == [(DISCONNECT, Reason.PROTOCOL_ERROR)]


@pytest.mark.parametrize("topic_filter", ["$share/g", "$share//c20/x", "$share/g+/c20/x",
                                          "$share/g#/c20/x", "$share/g/c20/#/x"],
                         ids=["no-filter-MQTT_4_8_2_1", "empty-share-name-MQTT_4_8_2_1",
                              "plus-in-share-name-MQTT_4_8_2_2",
                              "hash-in-share-name-MQTT_4_8_2_2", "bad-filter-MQTT_4_7_1_1"])
def test_invalid_shared_subscription_filter_disconnects_0x8F(broker, clients, topic_filter):
    """A $share filter that breaks the rules of spec 4.8.2 (a Share Name of at least one
    character without '/', '+' or '#', then '/' and a valid filter) is answered with
    DISCONNECT 0x8F (Topic Filter invalid), and no group is made."""
    c = clients.connected(broker, "c20-badshare", V5)
    c.send(subscribe_packet(1, [(topic_filter, 1)], V5))
    packets = c.expect_closed()
    assert [(p.type, p.reason) for p in packets] == [(DISCONNECT, TOPIC_FILTER_INVALID)], packets


@pytest.mark.parametrize("version", VERSIONS)
def test_unsubscribe_removes_the_membership_MQTT_3_10_4_1(broker, clients, version):
    """[MQTT-3.10.4-1] UNSUBSCRIBE $share/{group}/{filter} ends that membership: the other
    member gets every message (5.0 UNSUBACK: 0x00, then 0x11 for a group never joined)."""
    a, b = members(clients, broker, version, 2, "$share/c20un/c20/un")
    ack = a.unsubscribe(["$share/c20un/c20/un", "$share/never/c20/un"])
    if version == V5:
        assert ack.reasons == [Reason.SUCCESS, Reason.NO_SUBSCRIPTION_EXISTED]
    pub = clients.connected(broker, "c20-pub", version)
    for i in range(4):
        pub.publish("c20/un", str(i), qos=1)
    flush(pub)
    assert received([a, b]) == [[], ["0", "1", "2", "3"]]


@pytest.mark.parametrize("version", VERSIONS)
def test_normal_and_shared_subscriptions_are_independent_spec_4_8_2(broker, clients, version):
    """Spec 4.8.2: a Shared Subscription is independent of the session's other
    subscriptions: a session with an ordinary and a shared subscription matching a topic
    gets one copy for each, each with its own Subscription Identifier (5.0)."""
    c = clients.connected(broker, "c20-both", version)
    props = (lambda i: {Prop.SUBSCRIPTION_IDENTIFIER: i}) if version == V5 else (lambda i: None)
    c.subscribe("c20/both/#", 1, props=props(1))
    c.subscribe("$share/c20both/c20/both/+", 1, props=props(2))
    pub = clients.connected(broker, "c20-pub", version)
    pub.publish("c20/both/x", b"m", qos=1)
    flush(pub)
    got = c.barrier()
    assert [p.payload for p in got] == [b"m", b"m"]
    if version == V5:
        ids = sorted(p.properties.get(Prop.SUBSCRIPTION_IDENTIFIER)[0] for p in got)
        assert ids == [1, 2]


def test_unknown_strategy_is_a_config_error(run_ferrymq, tmp_path):
    """An unknown strategy is refused at FILE:LINE:COL, naming the ones there are."""
    path = tmp_path / "shared.yaml"
    path.write_text("shared_subscriptions:\n  strategy: fair\n")
    result = run_ferrymq("check-config", path)
    assert result.returncode == 1
    assert result.stderr == (f"{path}:2:13: unknown shared_subscriptions.strategy 'fair'; "
                             "expected one of: round_robin, random, sticky, hash_client, "
                             "hash_topic\n")
