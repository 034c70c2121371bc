# SPDX-License-Identifier: Apache-2.0
"""13 malformed: every frame of the codec's malformed table (tests/unit/test_malformed.cpp)
sent over a socket to a running broker, while well-behaved clients carry on beside them.

The table is dumped by the unit test binary ($FERRYMQ_UNIT_TESTS, default
build/tests/unit_tests) as JSON lines {"name", "version", "hex", "reason", "header_only"}.
For a frame that is not a CONNECT, the raw client first connects properly in the case's
version (3.1, 3.1.1 or 5.0) and then sends the frame. What must come back:

- 3.1 and 3.1.1: nothing; the connection is closed (EOF or reset).
- 5.0: DISCONNECT with exactly the case's reason code, then the close.
- A malformed CONNECT as the first packet: 0x84 gets a 3.1.1 CONNACK with return code 1
  [MQTT-3.1.2-2]; 0x85 a CONNACK 0x85 (5.0) or return code 2 (3.1, 3.1.1) [MQTT-3.1.3-9];
  anything else just the close, or for a 5.0 CONNECT a 5.0 CONNACK with the case's reason.

The broker decodes every frame with the same codec before it looks at the packet type, so
the codec's reason wins even for packets a client may never send (CONNACK, SUBACK, ...).

All cases run against one broker (max_packet_size set to the table's 1 MiB, which the
oversize cases are written against), a few connections at a time, while one paho client per
version publishes to itself and must see every message without ever being disconnected.
"""
import concurrent.futures
import json
import os
import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
import pytest

import ferrymq_harness as harness
from conftest import BrokerFactory
from mqtt_helpers import CONNACK, CONNECT, DISCONNECT, V31, V311, V5, RawClient, Reason, WaitTimeout

UNIT_TESTS = Path(os.environ.get("FERRYMQ_UNIT_TESTS")
                  or harness.REPO_ROOT / "build" / "tests" / "unit_tests")
DUMP_TEST_CASE = "malformed corpus: JSON lines dump"
# kMalformedMaxPacketSize in tests/unit/malformed_cases.hpp.
TABLE_MAX_PACKET_SIZE = 1024 * 1024
# Malformed connections in flight at once, and cases sent between two checks that the
# bystanders are still being served.
WORKERS = 8
BATCH = 32
VERSION_NAMES = {V31: "3.1", V311: "3.1.1", V5: "5.0"}

# Cases (by name) where the broker's answer is known to differ from what the table and the
# spec ask: each stays asserted as it should be and is marked xfail(strict) until fixed.
# Empty: every case passes against the current broker.
KNOWN_BUGS = {}


# --- the table ----------------------------------------------------------------------------


def dump_table():
    """Runs the unit test binary's dump test case; returns (cases, None) or (None, why)."""
    if not UNIT_TESTS.is_file():
        return None, f"{UNIT_TESTS} does not exist: build it (ninja -C build) or set " \
                     "FERRYMQ_UNIT_TESTS"
    with tempfile.TemporaryDirectory(prefix="ferrymq-malformed-") as scratch:
        path = Path(scratch) / "malformed.jsonl"
        env = dict(os.environ, FERRYMQ_DUMP_MALFORMED=str(path))
        try:
            result = subprocess.run(
                [str(UNIT_TESTS), "--no-intro", f"--test-case={DUMP_TEST_CASE}"],
                env=env, capture_output=True, text=True, timeout=60,
            )
        except subprocess.TimeoutExpired:
            return None, f"{UNIT_TESTS} did not finish the dump in 60s"
        if result.returncode != 0 or not path.is_file():
            return None, (f"{UNIT_TESTS} failed to dump the table (status {result.returncode})"
                          f"\n{result.stdout}{result.stderr}")
        cases = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not cases:
        return None, "the dumped malformed table is empty"
    return cases, None


_TABLE = None


def table():
    """The dumped table, loaded once per test run: (cases, error)."""
    global _TABLE
    if _TABLE is None:
        _TABLE = dump_table()
    return _TABLE


def pytest_generate_tests(metafunc):
    if "case" not in metafunc.fixturenames:
        return
    cases, error = table()
    if error is not None:
        metafunc.parametrize("case", [pytest.param({"error": error}, id="table")])
        return
    params = []
    for case in cases:
        marks = []
        if case["name"] in KNOWN_BUGS:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[case["name"]]))
        params.append(pytest.param(case, id=case["name"], marks=marks))
    metafunc.parametrize("case", params)


# --- sending one case ---------------------------------------------------------------------


@dataclass
class Outcome:
    """What the broker did with one malformed frame."""

    packets: list = field(default_factory=list)  # received after the frame (or the CONNECT)
    closed: str = None  # "eof" or "reset"; None if still open at the deadline
    setup_error: str = None  # the valid CONNECT before the frame failed
    receive_error: str = None  # what came back could not be parsed


def packet_type(case):
    return bytes.fromhex(case["hex"])[0] >> 4


def send_case(broker, index, case):
    frame = bytes.fromhex(case["hex"])
    version = case["version"]
    outcome = Outcome()
    with RawClient(broker, version) as client:
        if packet_type(case) != CONNECT:
            try:
                client.connect(f"malformed-{index}")
            except AssertionError as e:  # closed, timed out or refused
                outcome.setup_error = f"valid {VERSION_NAMES[version]} CONNECT failed: {e!r}"
                return outcome
        try:
            client.send(frame)
        except OSError:
            pass  # closed while sending; what came before the close is still read below
        try:
            outcome.packets = client.expect_closed()
            outcome.closed = client.closed_by_peer
        except WaitTimeout as e:
            outcome.packets = e.packets
        except AssertionError as e:
            outcome.receive_error = str(e)
    return outcome


# --- well-behaved clients beside the malformed ones --------------------------------------


class Bystander:
    """A paho client with a persistent session that publishes QoS 1 messages to its own
    topic, one after the other, each once the previous has come back."""

    def __init__(self, address, version):
        self.version = version
        self.topic = f"bystander/{VERSION_NAMES[version]}"
        self.sent = 0
        self.received = []
        self.disconnects = []
        self.errors = []
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._connected = False
        self._subscribed = False
        protocol = paho.MQTTv5 if version == 5 else paho.MQTTv311
        client_id = f"bystander-{version}"
        if version == 5:
            self.client = paho.Client(client_id, protocol=protocol)
        else:
            self.client = paho.Client(client_id, clean_session=False, protocol=protocol)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.address = address
        self._thread = threading.Thread(target=self._publish_loop, daemon=True,
                                        name=f"bystander-{version}")

    def start(self):
        host, port = self.address
        if self.version == 5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 300
            self.client.connect(host, port, keepalive=60, clean_start=True, properties=props)
        else:
            self.client.connect(host, port, keepalive=60)
        # paho leaves Nagle on; without TCP_NODELAY each round trip waits for a delayed ACK.
        self.client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client.loop_start()
        self._wait(lambda: self._connected, "CONNACK")
        self.client.subscribe(self.topic, qos=1)
        self._wait(lambda: self._subscribed, "SUBACK")
        self._thread.start()

    def stop(self):
        """Stops publishing and disconnects; a second call does nothing."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(harness.DEFAULT_TIMEOUT + 1)
        self.client.disconnect()
        self.client.loop_stop()

    def round_trips(self):
        """Messages that have come back so far."""
        with self._changed:
            return len(self.received)

    def wait_for_round_trips(self, count):
        """Waits (bounded) until `count` messages have come back; a stall is recorded in
        `errors` for test_well_behaved_clients_are_unaffected rather than raised."""
        try:
            self._wait(lambda: len(self.received) >= count or self.errors,
                       f"message {count - 1} back")
        except AssertionError as e:
            self.errors.append(str(e))

    def _publish_loop(self):
        while not self._stop.is_set():
            payload = f"{self.sent}"
            info = self.client.publish(self.topic, payload, qos=1)
            if info.rc != paho.MQTT_ERR_SUCCESS:
                self.errors.append(f"publish {payload}: {paho.error_string(info.rc)}")
                return
            self.sent += 1
            try:
                self._wait(lambda: len(self.received) >= self.sent, f"message {payload}")
            except AssertionError as e:
                self.errors.append(str(e))
                return

    def _wait(self, predicate, what):
        with self._changed:
            if not self._changed.wait_for(predicate, harness.DEFAULT_TIMEOUT):
                raise AssertionError(f"{self.topic}: no {what} within "
                                     f"{harness.DEFAULT_TIMEOUT}s")

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        with self._changed:
            self._connected = True
            self._changed.notify_all()

    def _on_subscribe(self, client, userdata, mid, granted, properties=None):
        with self._changed:
            self._subscribed = True
            self._changed.notify_all()

    def _on_disconnect(self, client, userdata, rc, properties=None):
        if not self._stop.is_set():
            self.disconnects.append(rc)

    def _on_message(self, client, userdata, message):
        with self._changed:
            self.received.append(message.payload.decode())
            self._changed.notify_all()


# --- the run ------------------------------------------------------------------------------


@dataclass
class Run:
    broker: object
    outcomes: dict  # case name -> Outcome
    bystanders: list
    sent_before: dict  # bystander topic -> messages sent when the first case went out


@pytest.fixture(scope="module")
def malformed_run(ferrymq_bin, tmp_path_factory):
    """Starts one broker and the bystanders, sends every case, and returns what happened.
    The cases are checked one by one by test_malformed_case."""
    cases, error = table()
    if error is not None:
        pytest.fail(error)
    factory = BrokerFactory(ferrymq_bin, tmp_path_factory.mktemp("malformed"))
    bystanders = []
    try:
        broker = factory(config_text=f"limits:\n  max_packet_size: {TABLE_MAX_PACKET_SIZE}\n")
        address = broker.addresses[0]
        for version in (4, 5):
            bystanders.append(Bystander(address, version))
            bystanders[-1].start()
        sent_before = {b.topic: b.sent for b in bystanders}
        outcomes = {}
        with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
            for start in range(0, len(cases), BATCH):
                # Every batch of malformed frames overlaps with bystander round trips.
                marks = [b.round_trips() for b in bystanders]
                batch = list(enumerate(cases))[start:start + BATCH]
                futures = {case["name"]: pool.submit(send_case, broker, i, case)
                           for i, case in batch}
                outcomes.update((name, f.result()) for name, f in futures.items())
                for bystander, mark in zip(bystanders, marks):
                    bystander.wait_for_round_trips(mark + 1)
        for bystander in bystanders:
            bystander.stop()
        yield Run(broker, outcomes, bystanders, sent_before)
    finally:
        for bystander in bystanders:
            bystander.stop()
        problems = factory.stop_all()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


# --- checks -------------------------------------------------------------------------------


def describe(case, outcome):
    state = f"closed ({outcome.closed})" if outcome.closed else \
        f"still open after {harness.DEFAULT_TIMEOUT}s"
    return (f"{case['name']}: sent {case['hex']} on a {VERSION_NAMES[case['version']]} "
            f"connection; received {outcome.packets or 'nothing'}, {state}")


def check_connect_refused(case, outcome):
    """A malformed CONNECT as the first packet."""
    reason = case["reason"]
    version = case["version"]
    raws = [p.raw for p in outcome.packets]
    if reason == Reason.UNSUPPORTED_PROTOCOL_VERSION:
        # The client's version is unknown, so the answer is in 3.1.1 form [MQTT-3.1.2-2].
        assert raws == [bytes([0x20, 0x02, 0x00, 0x01])], "expected CONNACK return code 1"
    elif reason == Reason.CLIENT_IDENTIFIER_NOT_VALID and version == 5:
        assert len(outcome.packets) == 1, "expected CONNACK 0x85"
        ack = outcome.packets[0]
        assert (ack.type, ack.session_present, ack.reason) == (CONNACK, False, reason)
    elif reason == Reason.CLIENT_IDENTIFIER_NOT_VALID:
        assert raws == [bytes([0x20, 0x02, 0x00, 0x02])], "expected CONNACK return code 2"
    elif outcome.packets:
        assert version == 5 and len(outcome.packets) == 1, "expected the close alone"
        ack = outcome.packets[0]
        assert (ack.type, ack.session_present, ack.reason) == (CONNACK, False, reason), \
            f"a 5.0 CONNACK may only carry 0x{reason:02X}"


def check_connection_failed(case, outcome):
    """A malformed packet after a successful CONNECT."""
    if case["version"] == 5:
        assert [p.type for p in outcome.packets] == [DISCONNECT], "expected DISCONNECT"
        got = outcome.packets[0].reason
        assert got == case["reason"], \
            f"DISCONNECT reason 0x{got:02X}, expected 0x{case['reason']:02X}"
    else:
        assert outcome.packets == [], "3.1/3.1.1: expected the close alone"


def test_malformed_case(malformed_run, case):
    if "error" in case:
        pytest.fail(case["error"])
    outcome = malformed_run.outcomes[case["name"]]
    assert outcome.setup_error is None, f"{case['name']}: {outcome.setup_error}"
    assert outcome.receive_error is None, f"{case['name']}: {outcome.receive_error}"
    context = describe(case, outcome)
    try:
        if packet_type(case) == CONNECT:
            check_connect_refused(case, outcome)
        else:
            check_connection_failed(case, outcome)
        assert outcome.closed, "the broker must close the connection"
    except AssertionError as e:
        raise AssertionError(f"{e}\n{context}") from None


def test_well_behaved_clients_are_unaffected(malformed_run):
    for bystander in malformed_run.bystanders:
        assert bystander.errors == [], bystander.topic
        assert bystander.disconnects == [], f"{bystander.topic} was disconnected"
        assert bystander.received == [str(i) for i in range(bystander.sent)], bystander.topic
        # It kept going while the malformed frames were sent: at least once per batch.
        batches = -(-len(malformed_run.outcomes) // BATCH)
        assert bystander.sent >= malformed_run.sent_before[bystander.topic] + batches, \
            bystander.topic
    broker = malformed_run.broker
    assert broker.is_running(), broker.describe()
    assert broker.sanitizer_report() is None
    with RawClient(broker, V5) as client:
        client.connect("after-the-table")
        assert client.barrier() == []
        assert client.disconnect() == []


def test_every_case_was_sent(malformed_run):
    cases, _ = table()
    assert set(malformed_run.outcomes) == {case["name"] for case in cases}
    assert len(cases) == len(malformed_run.outcomes) >= 200
