# SPDX-License-Identifier: Apache-2.0
"""40 bridges: ferrymq forwards local topics to a real upstream broker (Mosquitto, started
by the test on a free loopback port) and publishes what it subscribes to there locally.
Link faults come from a TCP proxy between the two that the test cuts or stalls; nothing
acknowledged locally may be lost, and order is kept (duplicates only from redelivery)."""
import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from mqtt_helpers import (PUBACK, V311, V5, Prop, ConnectionClosed, RawClient, WaitTimeout,
                          publish_packet)
from mqtt_helpers import clients  # noqa: F401 (fixture, used by name)
from upstream import Mosquitto, NetNamespace, TcpProxy


@pytest.fixture
def mosquitto(tmp_path):
    started = []

    def start(extra_config="", persistent=False):
        m = Mosquitto(tmp_path / f"mosquitto{len(started) + 1}", extra_config=extra_config,
                      persistent=persistent)
        started.append(m)
        return m.start()

    yield start
    for m in started:
        m.stop()


@pytest.fixture
def proxy():
    made = []

    def make(port):
        p = TcpProxy(port).start()
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def bridge_config(port, protocol="5", name="b40", extra="", queue="", keep_alive=10,
                  forward=None, subscribe=None, addresses=None):
    forward = forward if forward is not None else """
      - local: "f40/#"
        remote: "up40/{#}"
        add_user_properties:
          - gateway: gw1"""
    subscribe = subscribe if subscribe is not None else """
      - remote: "down40/#"
        local: "local40/{#}\""""
    return f"""
bridges:
  - name: {name}
    addresses: [{", ".join(f'"127.0.0.1:{p}"' for p in (addresses or [port]))}]
    protocol: "{protocol}"
    keep_alive: {keep_alive}
    backoff: {{min: 100, max: 500}}
{queue}{extra}    forward:{forward}
    subscribe:{subscribe}
"""


def wait_state(clients, broker, name, prefix, timeout=15):
    """Waits until $SYS/bridges/<name>/state starts with `prefix` (it is retained)."""
    watch = clients.raw(broker, V5)
    watch.connect(f"state-{name}-{time.monotonic_ns()}")
    watch.subscribe(f"$SYS/bridges/{name}/state", qos=0)
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = watch.receive(timeout=max(deadline - time.monotonic(), 0.1)).payload.decode()
        except WaitTimeout:
            break
        if last.startswith(prefix):
            watch.close()
            return last
    raise AssertionError(f"bridge {name} state is {last!r}, expected {prefix!r}...")


def bridge_in_outage(start_broker, clients, mosquitto, proxy, sub_id, **config):
    """Mosquitto behind a proxy, a ferrymq bridged to it (forward rules only) that went
    online, a QoS 1 subscriber to the bridge's topics on Mosquitto, and then the link cut
    with the bridge in backoff. Returns (ferrymq, proxy, upstream subscriber)."""
    m = mosquitto()
    px = proxy(m.port)
    b = start_broker(config_text=bridge_config(px.port, subscribe=" []", **config))
    wait_state(clients, b, "b40", "online")
    up_sub = clients.raw(m, V5)
    up_sub.connect(sub_id)
    up_sub.subscribe("up40/#", qos=1)
    px.cut()
    wait_state(clients, b, "b40", "backoff")
    return b, px, up_sub


def stream(broker, topic, count, version=V5, window=200, first=0):
    """Publishes `count` QoS 1 messages "%07d" first.. with `window` in flight; returns the
    sequence numbers acknowledged."""
    acked = []
    pub = RawClient(broker, version)
    try:
        pub.connect(f"stream-{time.monotonic_ns()}")
        ids = {}
        seq = first
        while seq < first + count or ids:
            while seq < first + count and len(ids) < window:
                pid = pub.new_id()
                pub.send(publish_packet(topic, b"%07d" % seq, 1, pid, version=version))
                ids[pid] = seq
                seq += 1
            p = pub.expect(PUBACK, timeout=30)
            acked.append(ids.pop(p.packet_id))
    finally:
        pub.close()
    return acked


def collect(sub, count, timeout=120):
    """Receives until `count` distinct payloads arrived; returns first arrivals in order."""
    seen = {}
    deadline = time.monotonic() + timeout
    while len(seen) < count:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"only {len(seen)} of {count} arrived"
        p = sub.receive(timeout=remaining)
        seen.setdefault(p.payload, None)
    return [int(x) for x in seen]


@pytest.mark.parametrize("upstream", ["3.1.1", "5"], ids=["up311", "up5"])
@pytest.mark.parametrize("local", [V311, V5], ids=["local311", "local5"])
def test_forward_and_subscribe_every_version_pair(start_broker, clients, mosquitto, local,
                                                  upstream):
    """A local message goes up with the topic mapped; on a 5.0 uplink its user properties
    (and the rule's gateway id) go with it, on 3.1.1 none can. A message from upstream comes
    down mapped, with its user properties when both hops are 5.0."""
    m = mosquitto()
    b = start_broker(config_text=bridge_config(m.port, upstream))
    wait_state(clients, b, "b40", "online")
    up_sub = clients.raw(m, V5)
    up_sub.connect("up-sub")
    up_sub.subscribe("up40/#", qos=1)
    local_sub = clients.raw(b, local)
    local_sub.connect("local-sub")
    local_sub.subscribe("local40/#", qos=1)

    pub = clients.raw(b, local)
    pub.connect("local-pub")
    props = {Prop.USER_PROPERTY: [("k", "v")]} if local == V5 else None
    pub.publish("f40/a/b", b"up", qos=1, props=props)
    p = up_sub.receive()
    assert (p.topic, p.payload, p.qos) == ("up40/a/b", b"up", 1)
    user = p.properties.get(Prop.USER_PROPERTY, [])
    if upstream == "5":
        assert user == ([("k", "v")] if local == V5 else []) + [("gateway", "gw1")]
    else:
        assert user == []

    up_pub = clients.raw(m, V5)
    up_pub.connect("up-pub")
    up_pub.publish("down40/c", b"down", qos=1, props={Prop.USER_PROPERTY: [("u", "1")]})
    p = local_sub.receive()
    assert (p.topic, p.payload) == ("local40/c", b"down")
    if local == V5:
        assert p.properties.get(Prop.USER_PROPERTY, []) == (
            [("u", "1")] if upstream == "5" else [])


@pytest.mark.parametrize("upstream", ["3.1.1", "5"], ids=["up311", "up5"])
def test_no_message_echoes_back(start_broker, clients, mosquitto, upstream):
    """Forward and subscribe rules over the same topics: No Local on 5.0, the echo filter on
    3.1.1 — each side sees each message once."""
    m = mosquitto()
    rules_f = """
      - local: "loop40/#\""""
    rules_s = """
      - remote: "loop40/#\""""
    b = start_broker(config_text=bridge_config(m.port, upstream, forward=rules_f,
                                               subscribe=rules_s))
    wait_state(clients, b, "b40", "online")
    local_sub = clients.raw(b, V5)
    local_sub.connect("l-sub")
    local_sub.subscribe("loop40/#", qos=1)
    up_sub = clients.raw(m, V5)
    up_sub.connect("u-sub")
    up_sub.subscribe("loop40/#", qos=1)
    pub = clients.raw(b, V5)
    pub.connect("l-pub")
    pub.publish("loop40/a", b"from-local", qos=1)
    assert up_sub.receive().payload == b"from-local"
    assert local_sub.receive().payload == b"from-local"
    up_pub = clients.raw(m, V5)
    up_pub.connect("u-pub")
    up_pub.publish("loop40/b", b"from-cloud", qos=1)
    assert local_sub.receive().payload == b"from-cloud"
    assert up_sub.receive().payload == b"from-cloud"
    # Anything echoing would have arrived by now behind a round trip through both brokers.
    up_pub.publish("loop40/marker", b"marker", qos=1)
    assert local_sub.receive().payload == b"marker"
    assert up_sub.receive().payload == b"marker"
    assert local_sub.barrier() == []
    assert up_sub.barrier() == []


def test_outage_of_50000_messages_drains_in_order(start_broker, clients, mosquitto, proxy):
    """50,000 QoS 1 messages published while the uplink is down all arrive, in order, once
    it is back; the backlog drains at link speed."""
    b, px, up_sub = bridge_in_outage(start_broker, clients, mosquitto, proxy, "o-sub")
    acked = stream(b, "f40/x", 50000)
    assert len(acked) == 50000
    started = time.monotonic()
    px.restore()
    got = collect(up_sub, 50000, timeout=180)
    elapsed = time.monotonic() - started
    assert got == list(range(50000)), "out of order or missing"
    print(f"drained 50,000 messages in {elapsed:.1f} s ({50000 / elapsed:.0f} msg/s)")


def test_kill_9_and_three_link_failures_lose_nothing(start_broker, clients, mosquitto, proxy):
    """The same backlog, with ferrymq killed (-9) and restarted midway and the link cut three
    times while it drains: every acknowledged message arrives, first arrivals in order."""
    b, px, up_sub = bridge_in_outage(start_broker, clients, mosquitto, proxy, "k-sub")
    total = 20000
    assert len(stream(b, "f40/x", total)) == total
    px.restore()

    seen = {}
    order = []

    def take(n):
        deadline = time.monotonic() + 60
        while len(seen) < n:
            p = up_sub.receive(timeout=max(deadline - time.monotonic(), 0.1))
            if p.payload not in seen:
                seen[p.payload] = None
                order.append(int(p.payload))

    take(4000)
    b = start_broker.restart(b, sig=signal.SIGKILL)
    for stop_at in (8000, 12000, 16000):
        take(stop_at)
        px.cut()
        time.sleep(0.2)  # the outage itself: the link stays down for a moment
        px.restore()
    take(total)
    assert order == sorted(order), "first arrivals out of order"
    assert set(order) == set(range(total))


def test_queue_limit_drops_the_oldest(start_broker, clients, mosquitto, proxy):
    b, px, up_sub = bridge_in_outage(
        start_broker, clients, mosquitto, proxy, "q-sub", queue="    queue: {max_messages: 5}\n")
    pub = clients.raw(b, V5)
    pub.connect("q-pub")
    for i in range(10):
        pub.publish("f40/q", b"%07d" % i, qos=1)
    px.restore()
    assert collect(up_sub, 5) == [5, 6, 7, 8, 9]
    assert up_sub.barrier() == []


def test_permanent_refusal_goes_to_the_dead_letter_topic(start_broker, clients, mosquitto,
                                                        tmp_path):
    """An upstream ACL denies one topic: Mosquitto answers the 5.0 PUBLISH with 0x87; the
    message goes to the local dead-letter topic and the rest keeps flowing."""
    acl = tmp_path / "acl"
    acl.write_text("topic deny up40/denied\ntopic readwrite #\n")
    m = mosquitto(extra_config=f"acl_file {acl}")
    b = start_broker(config_text=bridge_config(
        m.port, subscribe=" []", extra='    dead_letter_topic: "dead40"\n'))
    wait_state(clients, b, "b40", "online")
    dead = clients.raw(b, V5)
    dead.connect("dead-sub")
    dead.subscribe("dead40", qos=0)
    up_sub = clients.raw(m, V5)
    up_sub.connect("d-sub")
    up_sub.subscribe("up40/#", qos=1)
    pub = clients.raw(b, V5)
    pub.connect("d-pub")
    pub.publish("f40/denied", b"refused", qos=1)
    pub.publish("f40/fine", b"accepted", qos=1)
    p = dead.receive(timeout=10)
    assert p.payload == b"refused"
    user = dict(p.properties.get(Prop.USER_PROPERTY, []))
    assert user["ferrymq-topic"] == "f40/denied"
    assert user["ferrymq-bridge"] == "b40"
    assert "authorized" in user["ferrymq-reason"].lower()
    assert up_sub.receive().payload == b"accepted"


def test_half_open_link_is_detected_within_one_and_a_half_keep_alives(start_broker, clients,
                                                                     mosquitto, proxy):
    m = mosquitto()
    px = proxy(m.port)
    b = start_broker(config_text=bridge_config(px.port, subscribe=" []", keep_alive=2))
    wait_state(clients, b, "b40", "online")
    mark = b.log_mark()
    px.stall()
    started = time.monotonic()
    b.wait_for_log(r"half-open", since=mark, timeout=10)
    elapsed = time.monotonic() - started
    assert elapsed <= 2 * 1.5 + 1.0, f"detected after {elapsed:.1f} s"
    px.unstall()
    wait_state(clients, b, "b40", "online")


@pytest.mark.parametrize("name", ["bridge-mosquitto", "bridge-emqx", "bridge-aws-iot",
                                  "bridge-azure-iot-hub"])
def test_example_bridge_configs_are_valid(run_ferrymq, name, tmp_path):
    path = Path(__file__).resolve().parents[2] / "configs" / "examples" / f"{name}.yaml"
    # The certificate files an example names exist on the gateway; here empty stand-ins
    # in a directory of the test's own take their place (check-config reads no content).
    text = path.read_text()
    for name_in_etc in set(re.findall(r"/etc/ferrymq/([\w.-]+)", text)):
        (tmp_path / name_in_etc).write_text("")
    path = tmp_path / "example.yaml"
    path.write_text(text.replace("/etc/ferrymq/", f"{tmp_path}/"))
    r = run_ferrymq("check-config", str(path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith(": ok")


def test_check_config_names_the_line_of_a_bad_rule(run_ferrymq, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(bridge_config(1883, forward="""
      - local: "a/+"
        remote: "b/{2}\"""", subscribe=" []"))
    r = run_ferrymq("check-config", str(bad))
    assert r.returncode != 0
    assert re.search(r"bad\.yaml:\d+:\d+: \{2\} in 'b/\{2\}' but the filter 'a/\+' has only 1",
                     r.stderr), r.stderr


def test_queue_max_age_drops_what_waited_too_long(start_broker, clients, mosquitto, proxy):
    b, px, up_sub = bridge_in_outage(
        start_broker, clients, mosquitto, proxy, "a-sub", queue="    queue: {max_age: 1}\n")
    pub = clients.raw(b, V5)
    pub.connect("a-pub")
    for i in range(3):
        pub.publish("f40/old", b"%07d" % i, qos=1)
    time.sleep(1.5)  # the waiting itself is what is tested
    for i in range(3, 5):
        pub.publish("f40/new", b"%07d" % i, qos=1)
    px.restore()
    assert collect(up_sub, 2) == [3, 4]
    assert up_sub.barrier() == []


def test_queue_full_policy_refuse_answers_quota_exceeded(start_broker, clients, mosquitto,
                                                         proxy):
    b, px, up_sub = bridge_in_outage(
        start_broker, clients, mosquitto, proxy, "r-sub",
        queue="    queue: {max_messages: 3, full_policy: refuse}\n")
    pub = clients.raw(b, V5)
    pub.connect("r-pub")
    reasons = []
    for i in range(5):
        pid = pub.publish("f40/r", b"%07d" % i, qos=1, complete=False)
        reasons.append(pub.expect(PUBACK, pid).reason)
    assert reasons == [0, 0, 0, 0x97, 0x97]
    px.restore()
    assert collect(up_sub, 3) == [0, 1, 2]


def test_upstream_restarted_three_times_while_draining(start_broker, clients, mosquitto):
    """The upstream (a Mosquitto keeping its sessions) stops and starts three times while
    the backlog drains: every message arrives at its persistent subscriber, first arrivals
    in order."""
    m = mosquitto(persistent=True)

    def subscriber():
        c = clients.raw(m, V5)
        c.connect("rs-sub", clean=False, session_expiry=3600)
        c.subscribe("up40/#", qos=1)
        return c

    up_sub = subscriber()
    m.stop()
    b = start_broker(config_text=bridge_config(m.port, subscribe=" []"))
    total = 20000
    assert len(stream(b, "f40/x", total)) == total
    m.start()
    seen = {}
    order = []
    for stop_at in (5000, 10000, 15000, total):
        up_sub.close()
        up_sub = subscriber()
        deadline = time.monotonic() + 60
        while len(seen) < stop_at:
            p = up_sub.receive(timeout=max(deadline - time.monotonic(), 0.1))
            if p.payload not in seen:
                seen[p.payload] = None
                order.append(int(p.payload))
        if stop_at != total:
            m.stop()
            m.start()
    assert order == sorted(order), "first arrivals out of order"
    assert set(order) == set(range(total))


def test_failover_to_the_next_address_and_back(start_broker, clients, mosquitto, proxy):
    primary = mosquitto()
    backup = mosquitto()
    px = proxy(primary.port)
    px.cut()  # the first address refuses connections
    b = start_broker(config_text=bridge_config(0, addresses=[px.port, backup.port],
                                               subscribe=" []", extra="    failback: 1\n"))
    wait_state(clients, b, "b40", "online")
    on_primary = clients.raw(primary, V5)
    on_primary.connect("p-sub")
    on_primary.subscribe("up40/#", qos=1)
    on_backup = clients.raw(backup, V5)
    on_backup.connect("b-sub")
    on_backup.subscribe("up40/#", qos=1)
    pub = clients.raw(b, V5)
    pub.connect("fo-pub")
    pub.publish("f40/one", b"to-backup", qos=1)
    assert on_backup.receive().payload == b"to-backup"
    mark = b.log_mark()
    px.restore()
    b.wait_for_log(r"online again \(127\.0\.0\.1:%d\)" % px.port, since=mark, timeout=15)
    pub.publish("f40/two", b"to-primary", qos=1)
    assert on_primary.receive().payload == b"to-primary"


def test_response_topic_is_remapped_through_the_reverse_rule(start_broker, clients, mosquitto):
    """Request/response across the bridge (spec 4.10): a Response Topic names a topic on the
    sender's side, so it is carried over as the topic the rule bringing the reply back maps
    to it."""
    m = mosquitto()
    b = start_broker(config_text=bridge_config(m.port))
    wait_state(clients, b, "b40", "online")
    up_sub = clients.raw(m, V5)
    up_sub.connect("rt-up-sub")
    up_sub.subscribe("up40/#", qos=1)
    local_sub = clients.raw(b, V5)
    local_sub.connect("rt-local-sub")
    local_sub.subscribe("local40/#", qos=1)
    pub = clients.raw(b, V5)
    pub.connect("rt-pub")
    pub.publish("f40/req", b"question", qos=1,
                props={Prop.RESPONSE_TOPIC: "local40/reply/me", Prop.CORRELATION_DATA: b"\x01"})
    p = up_sub.receive()
    assert p.properties[Prop.RESPONSE_TOPIC] == "down40/reply/me"
    assert p.properties[Prop.CORRELATION_DATA] == b"\x01"
    up_pub = clients.raw(m, V5)
    up_pub.connect("rt-up-pub")
    up_pub.publish("down40/cmd", b"do it", qos=1, props={Prop.RESPONSE_TOPIC: "up40/answers"})
    p = local_sub.receive()
    assert p.properties[Prop.RESPONSE_TOPIC] == "f40/answers"


def test_message_a_3_1_1_upstream_refuses_by_closing_is_parked(start_broker, clients, mosquitto):
    """A 3.1.1 broker has no reason codes: Mosquitto closes the link on a PUBLISH above its
    max_packet_size. After the same message was at the head three times, it leaves the
    queue for the dead-letter topic and the messages behind it flow."""
    m = mosquitto(extra_config="max_packet_size 300")
    b = start_broker(config_text=bridge_config(
        m.port, "3.1.1", subscribe=" []", extra='    dead_letter_topic: "dead40"\n'))
    wait_state(clients, b, "b40", "online")
    dead = clients.raw(b, V5)
    dead.connect("pk-dead")
    dead.subscribe("dead40", qos=1)
    up_sub = clients.raw(m, V5)
    up_sub.connect("pk-sub")
    up_sub.subscribe("up40/#", qos=1)
    pub = clients.raw(b, V5)
    pub.connect("pk-pub")
    pub.publish("f40/big", b"x" * 1000, qos=1)
    pub.publish("f40/small", b"after", qos=1)
    p = dead.receive(timeout=20)
    assert len(p.payload) == 1000
    assert dict(p.properties[Prop.USER_PROPERTY])["ferrymq-topic"] == "f40/big"
    assert up_sub.receive(timeout=20).payload == b"after"


def test_upstream_maximum_packet_size_is_honoured(start_broker, clients, mosquitto):
    """A 5.0 upstream says its Maximum Packet Size in CONNACK: a larger message is never
    sent [MQTT-3.1.2-24]; it goes to the dead-letter topic and the rest flows."""
    m = mosquitto(extra_config="max_packet_size 300")
    b = start_broker(config_text=bridge_config(
        m.port, "5", subscribe=" []", extra='    dead_letter_topic: "dead40"\n'))
    wait_state(clients, b, "b40", "online")
    dead = clients.raw(b, V5)
    dead.connect("mps-dead")
    dead.subscribe("dead40", qos=1)
    up_sub = clients.raw(m, V5)
    up_sub.connect("mps-sub")
    up_sub.subscribe("up40/#", qos=1)
    pub = clients.raw(b, V5)
    pub.connect("mps-pub")
    pub.publish("f40/big", b"x" * 1000, qos=1)
    pub.publish("f40/small", b"after", qos=1)
    p = dead.receive(timeout=10)
    assert dict(p.properties[Prop.USER_PROPERTY])["ferrymq-reason"].startswith("larger than")
    assert up_sub.receive().payload == b"after"
    assert "closed by the upstream" not in b.log_text()


def test_health_topics_report_the_backlog(start_broker, clients, mosquitto, proxy):
    m = mosquitto()
    px = proxy(m.port)
    b = start_broker(config_text=bridge_config(px.port, subscribe=" []"))
    wait_state(clients, b, "b40", "online")
    px.cut()
    state = wait_state(clients, b, "b40", "backoff")
    assert "closed by the upstream broker" in state or "ECONNREFUSED" in state
    pub = clients.raw(b, V5)
    pub.connect("h-pub")
    for i in range(3):
        pub.publish("f40/h", b"%d" % i, qos=1)
    watch = clients.raw(b, V5)
    watch.connect("h-watch")
    watch.subscribe("$SYS/bridges/b40/queued", qos=0)
    deadline = time.monotonic() + 12  # health topics are published every 5 s
    value = None
    while value != b"3":
        value = watch.receive(timeout=max(deadline - time.monotonic(), 0.1)).payload


@pytest.fixture
def netns():
    """A network namespace with a veth link to it, made by the test and removed after."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2")
    made = []

    def make():
        ns = NetNamespace(len(made)).create()
        made.append(ns)
        return ns

    yield make
    for ns in made:
        ns.delete()


def test_link_set_down_is_detected_within_one_and_a_half_keep_alives(start_broker, clients,
                                                                    tmp_path, netns):
    """The upstream lives in a network namespace; setting the veth link down drops packets
    without a reset. The bridge notices by keep-alive: no packet for 1.5 x keep-alive."""
    ns = netns()
    m = Mosquitto(tmp_path / "mosquitto-ns", host=ns.ns_ip, prefix=ns.prefix)
    m.start()
    try:
        b = start_broker(config_text=bridge_config(0, subscribe=" []", keep_alive=2).replace(
            '"127.0.0.1:0"', f'"{ns.ns_ip}:{m.port}"'))
        wait_state(clients, b, "b40", "online")
        mark = b.log_mark()
        ns.down()
        started = time.monotonic()
        b.wait_for_log(r"half-open", since=mark, timeout=10)
        elapsed = time.monotonic() - started
        assert elapsed <= 2 * 1.5 + 1.0, f"detected after {elapsed:.1f} s"
        ns.up()
        wait_state(clients, b, "b40", "online", timeout=20)
    finally:
        m.stop()


@pytest.mark.parametrize("try_private", [True, False], ids=["private", "plain"])
def test_3_1_1_bridge_flag_stops_echoes_at_the_upstream(start_broker, clients, mosquitto,
                                                       try_private):
    """With try_private the 3.1.1 CONNECT carries the bridge flag and Mosquitto does not send
    the bridge's own messages back; without it they come back and the echo filter drops
    them. Either way local subscribers see each message once."""
    m = mosquitto()
    b = start_broker(config_text=bridge_config(
        m.port, "3.1.1", forward='\n      - local: "tp40/#"',
        subscribe='\n      - remote: "tp40/#"',
        extra=f"    try_private: {'true' if try_private else 'false'}\n"))
    wait_state(clients, b, "b40", "online")
    local_sub = clients.raw(b, V5)
    local_sub.connect("tp-sub")
    local_sub.subscribe("tp40/#", qos=1)
    up_sub = clients.raw(m, V5)
    up_sub.connect("tp-up")
    up_sub.subscribe("tp40/#", qos=1)
    pub = clients.raw(b, V5)
    pub.connect("tp-pub")
    pub.publish("tp40/a", b"once", qos=1)
    assert up_sub.receive().payload == b"once"
    assert local_sub.receive().payload == b"once"
    up_pub = clients.raw(m, V5)
    up_pub.connect("tp-up-pub")
    up_pub.publish("tp40/marker", b"marker", qos=1)  # behind any echo on the same link
    assert local_sub.receive().payload == b"marker"
    assert local_sub.barrier() == []
    b.stop()
    echoes = int(re.search(r"(\d+) echoes dropped", b.log_text()).group(1))
    assert echoes == (0 if try_private else 1)
