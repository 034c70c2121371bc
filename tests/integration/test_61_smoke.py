# SPDX-License-Identifier: Apache-2.0
"""61 smoke: the least a build must do, kept short so that it also runs against the arm64
build under qemu-user (packaging/cross/smoke-test.sh points FERRYMQ_BIN at it): start, one
publish/subscribe round trip, one bridge round trip through a local Mosquitto, a graceful
stop (checked by the start_broker fixture)."""
import time

import pytest

from mqtt_helpers import V5, V311, clients  # noqa: F401 (fixture, used by name)
from upstream import Mosquitto


@pytest.fixture
def mosquitto(tmp_path):
    m = Mosquitto(tmp_path / "mosquitto").start()
    yield m
    m.stop()


def test_publish_subscribe_round_trip(start_broker, clients):
    broker = start_broker()
    sub = clients.paho(broker, "smoke-sub", V5)
    sub.subscribe("smoke/#", qos=1)
    pub = clients.paho(broker, "smoke-pub", V311)
    pub.publish("smoke/hello", b"from 3.1.1 to 5.0", qos=1)
    message = sub.expect_message()
    assert (message.topic, message.payload, message.qos) == ("smoke/hello",
                                                             b"from 3.1.1 to 5.0", 1)


def test_bridge_round_trip(start_broker, clients, mosquitto):
    broker = start_broker(config_text=f"""
bridges:
  - name: smoke
    address: "127.0.0.1:{mosquitto.port}"
    protocol: "5"
    backoff: {{min: 100, max: 500}}
    forward:
      - local: "site/#"
        remote: "cloud/site1/{{#}}"
        qos: 1
    subscribe:
      - remote: "cloud/commands/site1/#"
        local: "commands/{{#}}"
        qos: 1
""")
    upstream = clients.paho(mosquitto, "smoke-cloud", V5)
    upstream.subscribe("cloud/site1/#", qos=1)
    local = clients.paho(broker, "smoke-device", V5)
    local.subscribe("commands/#", qos=1)
    # The bridge connects on its own: until it is online the command below would be lost
    # upstream (nothing subscribed there yet), so wait for its state.
    state = clients.paho(broker, "smoke-state", V5)
    state.subscribe("$SYS/bridges/smoke/state", qos=0)
    deadline = time.monotonic() + 30
    while state.expect_message(timeout=max(deadline - time.monotonic(), 0.1)).payload != b"online":
        pass
    local.publish("site/temperature", b"21.5", qos=1)
    up = upstream.expect_message()
    assert (up.topic, up.payload) == ("cloud/site1/temperature", b"21.5")
    upstream.publish("cloud/commands/site1/reboot", b"now", qos=1)
    down = local.expect_message()
    assert (down.topic, down.payload) == ("commands/reboot", b"now")
