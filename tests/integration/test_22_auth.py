# SPDX-License-Identifier: Apache-2.0
"""22 enhanced authentication (spec 4.12): SCRAM-SHA-256 (RFC 5802, RFC 7677) carried in
CONNECT, AUTH and CONNACK, including re-authentication, with the client side computed
here from the RFC's formulas (Python's hashlib and hmac)."""
import base64
import hashlib
import hmac

import pytest

from mqtt_helpers import (AUTH, CONNACK, DISCONNECT, PINGREQ_PACKET, PINGRESP, V5, Prop,
                          Reason, auth_packet, connect_packet, publish_packet)
from mqtt_helpers import clients  # noqa: F401 (fixture, used by name)

METHOD = "SCRAM-SHA-256"
CONFIG = """
authentication:
  scram_users:
    - username: alice
      password: s3cret
"""


class ScramClient:
    """The client side of one SCRAM-SHA-256 exchange."""

    def __init__(self, user, password, nonce="cNonce0123456789"):
        self.password = password
        self.nonce = nonce
        self.first_bare = f"n={user},r={nonce}"

    def first(self):
        return ("n,," + self.first_bare).encode()

    def final(self, server_first):
        server_first = server_first.decode()
        attrs = dict(part.split("=", 1) for part in server_first.split(","))
        assert attrs["r"].startswith(self.nonce), "server nonce must extend the client's"
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(),
                                     base64.b64decode(attrs["s"]), int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={attrs['r']}"
        self.auth_message = f"{self.first_bare},{server_first},{without_proof}".encode()
        signature = hmac.new(stored_key, self.auth_message, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        self.server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final):
        expected = hmac.new(self.server_key, self.auth_message, hashlib.sha256).digest()
        return server_final.decode() == "v=" + base64.b64encode(expected).decode()


def auth_props(data):
    return {Prop.AUTHENTICATION_METHOD: METHOD, Prop.AUTHENTICATION_DATA: data}


def connect_with_scram(c, scram, client_id="c22"):
    """Runs CONNECT → AUTH → AUTH → CONNACK and returns the CONNACK."""
    c.send(connect_packet(client_id, V5, props=auth_props(scram.first())))
    challenge = c.recv()
    assert challenge.type == AUTH, challenge
    assert challenge.reason == Reason.CONTINUE_AUTHENTICATION
    assert challenge.properties[Prop.AUTHENTICATION_METHOD] == METHOD
    c.send(auth_packet(Reason.CONTINUE_AUTHENTICATION,
                       auth_props(scram.final(challenge.properties[Prop.AUTHENTICATION_DATA]))))
    return c.recv()


def test_scram_connect_succeeds_MQTT_4_12_0_1(start_broker, clients):
    """A CONNECT with Authentication Method SCRAM-SHA-256 gets an AUTH challenge (0x18),
    and the right proof gets CONNACK 0x00 carrying the server signature, which the client
    verifies (mutual authentication)."""
    b = start_broker(config_text=CONFIG)
    c = clients.raw(b, V5)
    scram = ScramClient("alice", "s3cret")
    ack = connect_with_scram(c, scram)
    assert ack.type == CONNACK and ack.reason == 0, ack
    assert ack.properties[Prop.AUTHENTICATION_METHOD] == METHOD
    assert scram.verify(ack.properties[Prop.AUTHENTICATION_DATA])
    c.send(PINGREQ_PACKET)
    assert c.recv().type == PINGRESP


@pytest.mark.parametrize("user,password", [("alice", "wrong"), ("mallory", "s3cret")],
                         ids=["wrong-password", "unknown-user"])
def test_scram_wrong_credentials_refused(start_broker, clients, user, password):
    """A wrong password, or a user the broker does not know (who still gets a challenge, so
    user names cannot be probed), ends with CONNACK 0x86 and the close."""
    b = start_broker(config_text=CONFIG)
    c = clients.raw(b, V5)
    ack = connect_with_scram(c, ScramClient(user, password))
    assert ack.type == CONNACK and ack.reason == Reason.BAD_USERNAME_OR_PASSWORD, ack
    c.expect_closed()


def test_unknown_method_refused_with_0x8c(start_broker, clients):
    """An authentication method the broker does not support gets CONNACK 0x8C
    [MQTT-4.12.0-1 / 3.2.2.2]."""
    b = start_broker(config_text=CONFIG)
    c = clients.raw(b, V5)
    c.send(connect_packet("c22-m", V5, props={Prop.AUTHENTICATION_METHOD: "KERBEROS"}))
    packets = c.expect_closed()
    assert [p.type for p in packets] == [CONNACK], packets
    assert packets[0].reason == Reason.BAD_AUTHENTICATION_METHOD


def test_no_users_configured_means_no_method(broker, clients):
    """Without SCRAM users, SCRAM-SHA-256 is not offered: CONNACK 0x8C."""
    c = clients.raw(broker, V5)
    c.send(connect_packet("c22-n", V5, props=auth_props(ScramClient("alice", "x").first())))
    packets = c.expect_closed()
    assert [(p.type, p.reason) for p in packets] == [(CONNACK, Reason.BAD_AUTHENTICATION_METHOD)]


def test_other_packet_during_authentication_is_a_protocol_error_MQTT_4_12_0_6(start_broker,
                                                                               clients):
    """Before CONNACK, only AUTH may follow the CONNECT: a PUBLISH closes the connection."""
    b = start_broker(config_text=CONFIG)
    c = clients.raw(b, V5)
    c.send(connect_packet("c22-p", V5, props=auth_props(ScramClient("alice", "s3cret").first())))
    assert c.recv().type == AUTH
    c.send(publish_packet("t", b"x", version=V5))
    assert all(p.type != CONNACK for p in c.expect_closed())


def test_auth_without_method_is_a_protocol_error_MQTT_4_12_0_1(broker, clients):
    """AUTH on a connection that negotiated no method: DISCONNECT 0x82."""
    c = clients.raw(broker, V5)
    c.connect("c22-a")
    c.send(auth_packet(Reason.RE_AUTHENTICATE, auth_props(b"n,,n=alice,r=x")))
    packets = c.expect_closed()
    assert [(p.type, p.reason) for p in packets] == [(DISCONNECT, Reason.PROTOCOL_ERROR)]


def test_re_authentication_MQTT_4_12_1(start_broker, clients):
    """Re-authentication mid-session (AUTH 0x19 → AUTH 0x18 → AUTH 0x18 → AUTH 0x00) keeps
    the connection; a different method is a protocol error, a wrong proof ends it with
    DISCONNECT 0x87."""
    b = start_broker(config_text=CONFIG)
    c = clients.raw(b, V5)
    assert connect_with_scram(c, ScramClient("alice", "s3cret")).reason == 0

    again = ScramClient("alice", "s3cret", nonce="second-nonce")
    c.send(auth_packet(Reason.RE_AUTHENTICATE, auth_props(again.first())))
    challenge = c.recv()
    assert (challenge.type, challenge.reason) == (AUTH, Reason.CONTINUE_AUTHENTICATION)
    c.send(auth_packet(Reason.CONTINUE_AUTHENTICATION,
                       auth_props(again.final(challenge.properties[Prop.AUTHENTICATION_DATA]))))
    done = c.recv()
    assert (done.type, done.reason) == (AUTH, 0), done
    assert again.verify(done.properties[Prop.AUTHENTICATION_DATA])
    c.send(PINGREQ_PACKET)
    assert c.recv().type == PINGRESP

    bad = ScramClient("alice", "wrong", nonce="third-nonce")
    c.send(auth_packet(Reason.RE_AUTHENTICATE, auth_props(bad.first())))
    challenge = c.recv()
    c.send(auth_packet(Reason.CONTINUE_AUTHENTICATION,
                       auth_props(bad.final(challenge.properties[Prop.AUTHENTICATION_DATA]))))
    packets = c.expect_closed()
    assert [(p.type, p.reason) for p in packets] == [(DISCONNECT, Reason.NOT_AUTHORIZED)]


def test_re_authentication_with_another_method_is_a_protocol_error_MQTT_4_12_0_5(
        start_broker, clients):
    b = start_broker(config_text=CONFIG)
    c = clients.raw(b, V5)
    assert connect_with_scram(c, ScramClient("alice", "s3cret")).reason == 0
    c.send(auth_packet(Reason.RE_AUTHENTICATE, {Prop.AUTHENTICATION_METHOD: "OTHER"}))
    packets = c.expect_closed()
    assert [(p.type, p.reason) for p in packets] == [(DISCONNECT, Reason.PROTOCOL_ERROR)]
