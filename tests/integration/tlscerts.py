# SPDX-License-Identifier: Apache-2.0
"""Certificates for TLS tests, made with the openssl command line (EC P-256, SHA-256):

- ca: the test CA; other_ca: a second CA nobody trusts.
- server: CN=localhost, SAN DNS:localhost and IP:127.0.0.1, signed by ca.
- server2: the same names, another key and serial (for reload tests).
- server_expired: like server, valid only in 2020.
- server_wrong_name: CN/SAN wrong.example, signed by ca.
- server_other_ca: like server, signed by other_ca.
- server_encrypted: server's certificate with its key encrypted (PEM, AES-256) under
  the password in `key_password_file`.
- client: CN=device-1, SAN DNS:device-1.example; client_expired (2020); client_other_ca.

Each name is a Pair(cert, key) of paths; `certs.ca.cert` is the CA's certificate.
TlsEndpoint wraps a broker's listener so that RawClient speaks MQTT over TLS to it."""
import socket
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

KEY_PASSWORD = "correct horse battery staple"


@dataclass
class Pair:
    cert: Path
    key: Path


def _run(*args, cwd):
    r = subprocess.run(["openssl", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                       timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args))}: {r.stderr}")
    return r


class Certificates:
    def __init__(self, directory):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.key_password_file = self.dir / "key-password"
        self.key_password_file.write_text(KEY_PASSWORD + "\n")
        self.ca = self._ca("ca", "ferrymq test CA")
        self.other_ca = self._ca("other_ca", "untrusted test CA")
        server_names = "subjectAltName=DNS:localhost,IP:127.0.0.1"
        self.server = self._leaf("server", "localhost", server_names, self.ca)
        self.server2 = self._leaf("server2", "localhost", server_names, self.ca)
        self.server_expired = self._leaf("server_expired", "localhost", server_names, self.ca,
                                         expired=True)
        self.server_wrong_name = self._leaf("server_wrong_name", "wrong.example",
                                            "subjectAltName=DNS:wrong.example", self.ca)
        self.server_other_ca = self._leaf("server_other_ca", "localhost", server_names,
                                          self.other_ca)
        client_names = "subjectAltName=DNS:device-1.example"
        self.client = self._leaf("client", "device-1", client_names, self.ca)
        self.client_expired = self._leaf("client_expired", "device-1", client_names, self.ca,
                                         expired=True)
        self.client_other_ca = self._leaf("client_other_ca", "device-1", client_names,
                                          self.other_ca)
        encrypted_key = self.dir / "server_encrypted.key"
        # Traditional PEM encryption (AES-256-CBC): mbedTLS 2.28 reads it, while its PKCS#8
        # support stops at DES.
        _run("ec", "-in", self.server.key, "-aes256", "-out", encrypted_key, "-passout",
             f"file:{self.key_password_file}", cwd=self.dir)
        self.server_encrypted = Pair(self.server.cert, encrypted_key)

    def _key(self, name):
        key = self.dir / f"{name}.key"
        _run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key,
             cwd=self.dir)
        return key

    def _ca(self, name, cn):
        key = self._key(name)
        cert = self.dir / f"{name}.crt"
        _run("req", "-x509", "-new", "-key", key, "-subj", f"/CN={cn}", "-days", "30",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
             "keyUsage=critical,keyCertSign,cRLSign", "-out", cert, cwd=self.dir)
        # An "openssl ca" database, for certificates with chosen dates.
        db = self.dir / f"{name}-db"
        (db / "new").mkdir(parents=True)
        (db / "index.txt").write_text("")
        (db / "serial").write_text("1000\n")
        (db / "ca.cnf").write_text(f"""[ca]
default_ca = this
[this]
dir = {db}
database = $dir/index.txt
new_certs_dir = $dir/new
serial = $dir/serial
default_md = sha256
policy = anything
copy_extensions = copy
unique_subject = no
[anything]
commonName = supplied
""")
        return Pair(cert, key)

    def _leaf(self, name, cn, extension, ca, expired=False):
        key = self._key(name)
        csr = self.dir / f"{name}.csr"
        cert = self.dir / f"{name}.crt"
        _run("req", "-new", "-key", key, "-subj", f"/CN={cn}", "-addext", extension, "-out", csr,
             cwd=self.dir)
        dates = (["-startdate", "20200101000000Z", "-enddate", "20201231000000Z"] if expired
                 else ["-days", "30"])
        db = self.dir / f"{ca.cert.stem}-db"
        _run("ca", "-batch", "-notext", "-config", db / "ca.cnf", "-cert", ca.cert, "-keyfile",
             ca.key, "-in", csr, "-out", cert, *dates, cwd=self.dir)
        return Pair(cert, key)


def client_context(ca, pair=None, check_hostname=True):
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.check_hostname = check_hostname
    if pair is not None:
        ctx.load_cert_chain(str(pair.cert), str(pair.key))
    return ctx


class TlsEndpoint:
    """One TLS listener of a broker, for RawClient: connect() returns a TLS socket."""

    def __init__(self, broker, index, context, server_hostname="localhost"):
        self.host, self.port = broker.addresses[index]
        self.addresses = [(self.host, self.port)]
        self.context = context
        self.server_hostname = server_hostname
        self.last_socket = None

    def connect(self, index=0, timeout=10):
        raw = socket.create_connection(self.addresses[index], timeout=timeout)
        try:
            self.last_socket = self.context.wrap_socket(raw, server_hostname=self.server_hostname)
        except BaseException:
            raw.close()
            raise
        return self.last_socket
