# SPDX-License-Identifier: Apache-2.0
"""07 retained: retained messages (spec 3.3.1.3): stored, replaced, deleted by an empty
payload, sent on subscribe with RETAIN 1 at min(message QoS, subscription QoS), and
forwarded to existing subscribers with RETAIN 0 (3.1.1; 5.0 unless Retain As Published).

A retained message is sent right after the SUBACK of the subscription that asked for it, so
a PINGREQ round trip after SUBSCRIBE collects all of them (RawClient.barrier)."""
import pytest

from mqtt_helpers import V311, V5, VERSIONS, flush
from mqtt_helpers import clients  # noqa: F401 (fixture, used by name)


def _retained_on_subscribe(broker, clients, version, topic_filter, qos=2, name="c07-late",
                           options=0):
    """A new client subscribes to `topic_filter` and gets its retained messages as
    [(topic, payload, qos, retain)]."""
    late = clients.connected(broker, name, version)
    late.subscribe(topic_filter, qos, options=options)
    return [(p.topic, p.payload, p.qos, p.retain) for p in late.barrier()]


@pytest.mark.parametrize("version", VERSIONS)
def test_retained_sent_on_subscribe_MQTT_3_3_1_6(broker, clients, version):
    """[MQTT-3.3.1-5], [MQTT-3.3.1-6], [MQTT-3.3.1-8] A retained message is stored and sent
    to a later subscriber with RETAIN 1; non-retained messages are not stored."""
    pub = clients.connected(broker, "c07-pub", version)
    pub.publish("c07/r/1", b"kept", qos=1, retain=True)
    pub.publish("c07/r/2", b"not kept", qos=1, retain=False)
    got = _retained_on_subscribe(broker, clients, version, "c07/r/#", qos=1)
    assert got == [("c07/r/1", b"kept", 1, True)]


@pytest.mark.parametrize("version", VERSIONS)
def test_retained_replaced_MQTT_3_3_1_5(broker, clients, version):
    """[MQTT-3.3.1-5] A new retained message on a topic replaces the previous one."""
    pub = clients.connected(broker, "c07-pub", version)
    pub.publish("c07/replace", b"first", qos=1, retain=True)
    pub.publish("c07/replace", b"second", qos=1, retain=True)
    got = _retained_on_subscribe(broker, clients, version, "c07/replace", qos=1)
    assert got == [("c07/replace", b"second", 1, True)]


@pytest.mark.parametrize("version", VERSIONS)
def test_retained_deleted_by_empty_payload_MQTT_3_3_1_10(broker, clients, version):
    """[MQTT-3.3.1-10], [MQTT-3.3.1-11] A retained PUBLISH with an empty payload deletes
    the retained message and is not stored itself; subscribers connected at the time still
    receive it as a normal message (spec 3.3.1.3)."""
    pub = clients.connected(broker, "c07-pub", version)
    pub.publish("c07/del", b"soon gone", qos=1, retain=True)
    live = clients.connected(broker, "c07-live", version)
    live.subscribe("c07/del", 1)
    assert [p.payload for p in live.barrier()] == [b"soon gone"]

    pub.publish("c07/del", b"", qos=1, retain=True)
    flush(pub)
    assert [(p.payload, p.retain) for p in live.barrier()] == [(b"", False)]
    assert _retained_on_subscribe(broker, clients, version, "c07/#") == []


@pytest.mark.parametrize("version", VERSIONS)
def test_retained_qos_is_min_of_message_and_subscription_MQTT_3_8_4_6(broker, clients,
                                                                      version):
    """[MQTT-3.8.4-6] A retained message is sent at the lower of the QoS it was published
    with and the subscription's QoS: every pair of 0, 1, 2."""
    pub = clients.connected(broker, "c07-pub", version)
    for qos in range(3):
        pub.publish(f"c07/q/{qos}", f"q{qos}", qos=qos, retain=True)
    flush(pub)
    for sub_qos in range(3):
        got = _retained_on_subscribe(broker, clients, version, "c07/q/#", qos=sub_qos,
                                     name=f"c07-sub{sub_qos}")
        assert sorted(got) == [(f"c07/q/{q}", f"q{q}".encode(), min(q, sub_qos), True)
                               for q in range(3)], (sub_qos, got)


@pytest.mark.parametrize("version,options,retain_flag", [
    pytest.param(V311, 0, False, id="v311"),
    pytest.param(V5, 0, False, id="v5"),
    pytest.param(V5, 0x08, True, id="v5-retain-as-published"),
])
def test_forwarded_retained_message_has_retain_0_MQTT_3_3_1_9(broker, clients, version,
                                                              options, retain_flag):
    """[MQTT-3.3.1-9] 3.1.1 (and 5.0 with Retain As Published 0 [MQTT-3.3.1-12]): a retained
    message published while a client is subscribed reaches it with RETAIN 0. 5.0 with
    Retain As Published 1 [MQTT-3.3.1-13]: with RETAIN as published."""
    sub = clients.connected(broker, "c07-live", version)
    sub.subscribe("c07/fan", 1, options=options)
    pub = clients.connected(broker, "c07-pub", version)
    pub.publish("c07/fan", b"live", qos=1, retain=True)
    flush(pub)
    assert [(p.payload, p.retain) for p in sub.barrier()] == [(b"live", retain_flag)]
    # It was stored all the same, and a new subscription gets it with RETAIN 1.
    assert _retained_on_subscribe(broker, clients, version, "c07/fan", qos=1) == \
        [("c07/fan", b"live", 1, True)]


@pytest.mark.parametrize("version", VERSIONS)
def test_retained_for_each_matching_topic(broker, clients, version):
    """A wildcard subscription gets the retained message of every matching topic, once
    each; a '$' topic's retained message is not sent for '#' [MQTT-4.7.2-1]."""
    pub = clients.connected(broker, "c07-pub", version)
    topics = ["c07/m/a", "c07/m/b/c", "c07/other", "$c07test/hidden"]
    for topic in topics:
        pub.publish(topic, topic, qos=1, retain=True)
    got = _retained_on_subscribe(broker, clients, version, "#", qos=1)
    assert sorted(t for t, _, _, _ in got) == ["c07/m/a", "c07/m/b/c", "c07/other"]
    got = _retained_on_subscribe(broker, clients, version, "$c07test/#", qos=1,
                                 name="c07-dollar")
    assert [t for t, _, _, _ in got] == ["$c07test/hidden"]


@pytest.mark.parametrize("handling,expected", [(0, [2, 2]), (1, [2, 0]), (2, [0, 0])],
                         ids=["rh0-always", "rh1-if-new", "rh2-never"])
def test_v5_retain_handling(broker, clients, handling, expected):
    """5.0 Retain Handling (5.0 numbering [MQTT-3.3.1-9], [MQTT-3.3.1-10], [MQTT-3.3.1-11]):
    0 sends retained messages on every
    SUBSCRIBE, 1 only when the subscription is new, 2 never. `expected` counts what two
    identical SUBSCRIBEs get."""
    pub = clients.connected(broker, "c07-pub", V5)
    pub.publish("c07/rh/a", b"a", qos=1, retain=True)
    pub.publish("c07/rh/b", b"b", qos=1, retain=True)
    sub = clients.connected(broker, "c07-rh", V5)
    counts = []
    for _ in range(2):
        sub.subscribe("c07/rh/#", 1, options=handling << 4)
        counts.append(len(sub.barrier()))
    assert counts == expected
