# SPDX-License-Identifier: Apache-2.0
"""24 $SYS: the broker's own topics (config `sys.interval`). Every interval the broker
publishes, retained at QoS 0, each value that changed; '#' never matches them
[MQTT-4.7.2-1]; clients may not publish to $SYS/... (dropped; 5.0 QoS 1/2 get 0x87).

Waits are bounded reads of the subscriber's PUBLISHes, never sleeps."""
import time

import pytest

from mqtt_helpers import PUBACK, PUBREC, V31, V311, V5, VERSIONS, Reason, TIMEOUT, flush
from mqtt_helpers import clients  # noqa: F401 (fixture, used by name)

SYS_CONFIG = """
sys:
  interval: 1
"""


def _wait_value(sub, topic, value, seen=None):
    """Reads `sub`'s PUBLISHes until `topic` carries `value` (text); every value read goes
    into `seen` (topic -> latest payload). Bounded by the test timeout."""
    seen = {} if seen is None else seen
    if seen.get(topic) == value:
        return seen
    deadline = time.monotonic() + TIMEOUT
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"{topic} never became {value!r}; last {seen.get(topic)!r}"
        p = sub.receive(timeout=left)
        seen[p.topic] = p.payload.decode()
        if p.topic == topic and seen[topic] == value:
            return seen


def _sys_subscriber(b, clients, client_id, version=V311):
    sub = clients.connected(b, client_id, version)
    sub.subscribe("$SYS/#", 0)
    return sub


def test_sys_version_and_connected_clients_per_version(start_broker, clients):
    """The version is published, and the connected counts per protocol version follow
    clients of 3.1, 3.1.1 and 5.0 as they connect and leave."""
    b = start_broker(config_text=SYS_CONFIG)
    version = b.wait_for_log(r"ferrymq (\S+) starting").group(1)
    sub = _sys_subscriber(b, clients, "c24-sys")
    seen = _wait_value(sub, "$SYS/broker/version", version)
    seen = _wait_value(sub, "$SYS/broker/clients/connected/v3.1.1", "1", seen)
    seen = _wait_value(sub, "$SYS/broker/clients/connected/v5", "0", seen)

    v5 = clients.connected(b, "c24-v5", V5)
    seen = _wait_value(sub, "$SYS/broker/clients/connected/v5", "1", seen)
    clients.connected(b, "c24-v311", V311)
    seen = _wait_value(sub, "$SYS/broker/clients/connected/v3.1.1", "2", seen)
    clients.connected(b, "c24-v31", V31)
    seen = _wait_value(sub, "$SYS/broker/clients/connected/v3.1", "1", seen)
    seen = _wait_value(sub, "$SYS/broker/clients/connected", "4", seen)

    v5.disconnect()
    _wait_value(sub, "$SYS/broker/clients/connected/v5", "0", seen)


def test_sys_values_are_retained_for_late_subscribers(start_broker, clients):
    """A subscriber that comes after a publication gets the values as retained messages."""
    b = start_broker(config_text=SYS_CONFIG)
    first = _sys_subscriber(b, clients, "c24-first")
    _wait_value(first, "$SYS/broker/clients/connected/v3.1.1", "1")
    late = clients.connected(b, "c24-late", V5)
    late.subscribe("$SYS/broker/uptime", 0)
    p = late.receive()
    assert p.topic == "$SYS/broker/uptime" and p.retain
    assert p.payload.decode().isdigit()


@pytest.mark.parametrize("version", VERSIONS)
def test_hash_does_not_match_sys_MQTT_4_7_2_1(start_broker, clients, version):
    """[MQTT-4.7.2-1] '#' receives neither the retained $SYS values nor new ones."""
    b = start_broker(config_text=SYS_CONFIG)
    sys = _sys_subscriber(b, clients, "c24-sys", version)
    seen = _wait_value(sys, "$SYS/broker/sessions", "1")
    wild = clients.connected(b, "c24-wild", version)
    wild.subscribe([("#", 0), ("+/broker/#", 0)])
    _wait_value(sys, "$SYS/broker/sessions", "2", seen)  # a publication after the SUBSCRIBE
    assert [p.topic for p in wild.barrier()] == []


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_client_publish_to_sys_is_dropped(start_broker, clients, version, qos):
    """A client's PUBLISH to $SYS/... reaches no subscriber and is not retained; a 5.0
    QoS 1/2 publisher is told 0x87 (Not authorized), a 3.1.1 one gets the usual ack."""
    b = start_broker(config_text=SYS_CONFIG)
    sub = clients.connected(b, "c24-sub", version)
    sub.subscribe("$SYS/c24/#", 0)
    pub = clients.connected(b, "c24-pub", version)
    packet_id = pub.publish("$SYS/c24/fake", b"42", qos=qos, retain=True, complete=False)
    if qos:
        ack = pub.expect(PUBACK if qos == 1 else PUBREC, packet_id)
        if version == V5:
            assert ack.reason == Reason.NOT_AUTHORIZED
        else:
            assert not ack.reason
    flush(pub)
    assert [p.topic for p in sub.barrier()] == []
    late = clients.connected(b, "c24-late", version)
    late.subscribe("$SYS/c24/#", 0)
    assert [p.topic for p in late.barrier()] == []
