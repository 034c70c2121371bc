# SPDX-License-Identifier: Apache-2.0
"""28 authentication plugins: an enhanced-authentication method (spec 4.12) loaded from a
shared object through the C ABI of include/ferrymq/plugin.h, configured as `plugins:`.

The plugin is the example built from plugins/example_auth.c, found next to the binary under
test (BUILD/plugins/ for BUILD/src/ferrymq), so the ASan build loads its own instrumented
copy. Its method, "ferrymq-example-echo", answers the CONNECT's data reversed and accepts
the client once it sends that challenge back; user "banned" gets 0x8A at once."""
import pytest

import ferrymq_harness as harness
from mqtt_helpers import (AUTH, CONNACK, DISCONNECT, PINGREQ_PACKET, PINGRESP, V5, Prop,
                          Reason, auth_packet, connect_packet)
from mqtt_helpers import clients  # noqa: F401 (fixture, used by name)
from test_22_auth import CONFIG as SCRAM_CONFIG, ScramClient, connect_with_scram

METHOD = "ferrymq-example-echo"
BANNED = 0x8A


def plugin_path():
    path = harness.ferrymq_binary().resolve().parents[1] / "plugins" / \
        "libferrymq_example_auth.so"
    if not path.is_file():
        pytest.fail(f"{path} does not exist: build it (ninja -C build)")
    return path


def plugin_config(*paths):
    return "plugins:\n" + "".join(f"  - path: \"{p}\"\n" for p in paths)


def props(data=None):
    p = {Prop.AUTHENTICATION_METHOD: METHOD}
    if data is not None:
        p[Prop.AUTHENTICATION_DATA] = data
    return p


def start_with_plugin(start_broker, extra=""):
    b = start_broker(config_text=plugin_config(plugin_path()) + extra)
    b.wait_for_log(rf"enhanced authentication method: {METHOD}$")
    return b


def test_plugin_method_connect_MQTT_4_12_0_2(start_broker, clients):
    """CONNECT with the plugin's method gets AUTH 0x18 carrying the plugin's challenge; the
    right answer gets CONNACK 0x00 with the plugin's Authentication Data [MQTT-4.12.0-2]."""
    b = start_with_plugin(start_broker)
    c = clients.raw(b, V5)
    c.send(connect_packet("c28-ok", V5, props=props(b"abc"), username="alice"))
    challenge = c.recv()
    assert (challenge.type, challenge.reason) == (AUTH, Reason.CONTINUE_AUTHENTICATION)
    assert challenge.properties[Prop.AUTHENTICATION_METHOD] == METHOD
    assert challenge.properties[Prop.AUTHENTICATION_DATA] == b"cba"
    c.send(auth_packet(Reason.CONTINUE_AUTHENTICATION, props(b"cba")))
    ack = c.recv()
    assert (ack.type, ack.reason) == (CONNACK, 0), ack
    assert ack.properties[Prop.AUTHENTICATION_METHOD] == METHOD
    assert ack.properties[Prop.AUTHENTICATION_DATA] == b"hello alice"
    c.send(PINGREQ_PACKET)
    assert c.recv().type == PINGRESP


@pytest.mark.parametrize("case,first,answer,reason", [
    ("wrong-answer", b"abc", b"abc", Reason.NOT_AUTHORIZED),
    ("no-data", None, None, Reason.BAD_USERNAME_OR_PASSWORD),
    ("banned", b"abc", None, BANNED),
])
def test_plugin_refusals_carry_its_reason_code(start_broker, clients, case, first, answer,
                                              reason):
    """The plugin's reason code reaches the client in CONNACK (0x87 for a wrong answer,
    the default 0x86 when it gave none, 0x8A for the banned user at once), with only
    "authentication failed" as the Reason String; the plugin's own message goes to the log."""
    b = start_with_plugin(start_broker)
    c = clients.raw(b, V5)
    user = "banned" if case == "banned" else "alice"
    c.send(connect_packet(f"c28-{case}", V5, props=props(first), username=user))
    if answer is not None:
        assert c.recv().type == AUTH
        c.send(auth_packet(Reason.CONTINUE_AUTHENTICATION, props(answer)))
    packets = c.expect_closed()
    assert [(p.type, p.reason) for p in packets] == [(CONNACK, reason)], packets
    assert packets[0].properties[Prop.REASON_STRING] == "authentication failed"
    b.wait_for_log(r"authentication with ferrymq-example-echo failed: \S")


def test_plugin_re_authentication_MQTT_4_12_1_1(start_broker, clients):
    """AUTH 0x19 starts a new exchange of the plugin's method; success is AUTH 0x00 and the
    connection stays, a wrong answer ends it with DISCONNECT 0x87."""
    b = start_with_plugin(start_broker)
    c = clients.raw(b, V5)
    c.send(connect_packet("c28-again", V5, props=props(b"one"), username="bob"))
    assert c.recv().type == AUTH
    c.send(auth_packet(Reason.CONTINUE_AUTHENTICATION, props(b"eno")))
    assert c.recv().reason == 0

    c.send(auth_packet(Reason.RE_AUTHENTICATE, props(b"two")))
    challenge = c.recv()
    assert (challenge.type, challenge.properties[Prop.AUTHENTICATION_DATA]) == (AUTH, b"owt")
    c.send(auth_packet(Reason.CONTINUE_AUTHENTICATION, props(b"owt")))
    done = c.recv()
    assert (done.type, done.reason) == (AUTH, 0), done
    assert done.properties[Prop.AUTHENTICATION_DATA] == b"hello bob"

    c.send(auth_packet(Reason.RE_AUTHENTICATE, props(b"three")))
    assert c.recv().type == AUTH
    c.send(auth_packet(Reason.CONTINUE_AUTHENTICATION, props(b"three")))
    packets = c.expect_closed()
    assert [(p.type, p.reason) for p in packets] == [(DISCONNECT, Reason.NOT_AUTHORIZED)]


def test_plugin_and_scram_side_by_side(start_broker, clients):
    """A plugin method joins SCRAM-SHA-256 instead of replacing it; a method neither offers
    still gets CONNACK 0x8C [MQTT-4.12.0-1]."""
    b = start_with_plugin(start_broker, SCRAM_CONFIG)
    b.wait_for_log(r"enhanced authentication method: SCRAM-SHA-256$")
    scram = clients.raw(b, V5)
    assert connect_with_scram(scram, ScramClient("alice", "s3cret"), "c28-scram").reason == 0
    other = clients.raw(b, V5)
    other.send(connect_packet("c28-other", V5, props={Prop.AUTHENTICATION_METHOD: "KERBEROS"}))
    packets = other.expect_closed()
    assert [(p.type, p.reason) for p in packets] == [(CONNACK, Reason.BAD_AUTHENTICATION_METHOD)]


def test_connection_closed_mid_exchange(start_broker, clients):
    """A client that leaves between the challenge and its answer ends the exchange (the
    plugin frees it; the ASan build would report a leak); the broker serves the next one."""
    b = start_with_plugin(start_broker)
    quitter = clients.raw(b, V5)
    quitter.send(connect_packet("c28-quit", V5, props=props(b"abc")))
    assert quitter.recv().type == AUTH
    quitter.close()
    c = clients.raw(b, V5)
    c.send(connect_packet("c28-next", V5, props=props(b"xy")))
    assert c.recv().properties[Prop.AUTHENTICATION_DATA] == b"yx"
    c.send(auth_packet(Reason.CONTINUE_AUTHENTICATION, props(b"yx")))
    assert c.recv().type == CONNACK


@pytest.mark.parametrize("case", ["missing", "not-a-shared-object", "twice"])
def test_bad_plugin_stops_the_start(start_broker, tmp_path, case):
    """A plugin that cannot be loaded (no file, not a shared object) or that offers a method
    already offered is a start-up error: exit status 1 and the reason in the log."""
    if case == "missing":
        config, expected = plugin_config(tmp_path / "nope.so"), r"nope\.so"
    elif case == "not-a-shared-object":
        fake = tmp_path / "fake.so"
        fake.write_text("not ELF\n")
        config, expected = plugin_config(fake), r"fake\.so"
    else:
        config = plugin_config(plugin_path(), plugin_path())
        expected = rf"'{METHOD}' is already offered"
    b = start_broker(config_text=config, wait=False)
    assert b.wait_for_exit() == 1, b.log_text()
    b.wait_for_log(rf"cannot load plugin .*{expected}")
    assert "listening on" not in b.log_text()
