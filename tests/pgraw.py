"""A minimal PostgreSQL protocol 3.0 client on a raw socket, for tests that must send what no driver sends
(malformed packets, vanishing mid-query) and read exactly what the proxy answers (ErrorResponse fields).

Only what the tests need: startup, trust/md5/SCRAM-SHA-256 login, simple Query, the extended protocol's
Parse/Bind/Execute/Sync with text parameters, reading messages.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import socket
import struct
import time
from dataclasses import dataclass, field

PROTOCOL_3_0 = 196608
SSL_REQUEST_CODE = 80877103
CANCEL_REQUEST_CODE = 80877102


@dataclass
class Message:
    type: bytes  # one byte, e.g. b"E"
    payload: bytes

    def error_fields(self) -> dict[str, str]:
        """Fields of an ErrorResponse/NoticeResponse, keyed by their one-letter code (S, V, C, M, ...)."""
        assert self.type in (b"E", b"N"), f"not an error/notice: {self.type!r}"
        return parse_error_fields(self.payload)


def parse_error_fields(payload: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    i = 0
    while i < len(payload) and payload[i] != 0:
        code = chr(payload[i])
        end = payload.index(b"\x00", i + 1)
        fields[code] = payload[i + 1:end].decode("utf-8", "replace")
        i = end + 1
    return fields


def startup_packet(params: dict[str, str], version: int = PROTOCOL_3_0) -> bytes:
    body = struct.pack("!i", version)
    for k, v in params.items():
        body += k.encode() + b"\x00" + v.encode() + b"\x00"
    body += b"\x00"
    return struct.pack("!i", len(body) + 4) + body


def frame(type_: bytes, payload: bytes = b"") -> bytes:
    return type_ + struct.pack("!i", len(payload) + 4) + payload


def query_message(sql: str) -> bytes:
    return frame(b"Q", sql.encode() + b"\x00")


TERMINATE = frame(b"X")
SYNC = frame(b"S")


def parse_message(sql: str, name: str = "") -> bytes:
    return frame(b"P", name.encode() + b"\x00" + sql.encode() + b"\x00" + struct.pack("!h", 0))


def bind_message(params: tuple = (), statement: str = "", portal: str = "") -> bytes:
    """A Bind of text parameters (None is NULL), results in text."""
    body = portal.encode() + b"\x00" + statement.encode() + b"\x00" + struct.pack("!hh", 0, len(params))
    for p in params:
        if p is None:
            body += struct.pack("!i", -1)
        else:
            value = str(p).encode()
            body += struct.pack("!i", len(value)) + value
    return frame(b"B", body + struct.pack("!h", 0))


def execute_message(portal: str = "", max_rows: int = 0) -> bytes:
    return frame(b"E", portal.encode() + b"\x00" + struct.pack("!i", max_rows))


def extended(sql: str, params: tuple = ()) -> bytes:
    """Parse, Bind and Execute of one unnamed statement (no Sync)."""
    return parse_message(sql) + bind_message(params) + execute_message()


class ClosedError(Exception):
    """The peer closed the connection."""


@dataclass
class RawConn:
    sock: socket.socket
    buf: bytearray = field(default_factory=bytearray)
    parameters: dict[str, str] = field(default_factory=dict)
    backend_key: tuple[int, int] | None = None

    @classmethod
    def open(cls, host: str, port: int, timeout: float = 5.0) -> "RawConn":
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.settimeout(timeout)
        return cls(sock)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no data from the proxy in time")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout as e:
            raise TimeoutError("no data from the proxy in time") from e
        except ConnectionResetError as e:
            raise ClosedError("connection reset") from e
        if not data:
            raise ClosedError("connection closed")
        self.buf += data

    def read_message(self, timeout: float = 5.0) -> Message:
        deadline = time.monotonic() + timeout
        while len(self.buf) < 5:
            self._fill(deadline)
        (length,) = struct.unpack("!i", self.buf[1:5])
        assert length >= 4, f"invalid length {length} from the proxy"
        while len(self.buf) < 1 + length:
            self._fill(deadline)
        msg = Message(bytes(self.buf[0:1]), bytes(self.buf[5:1 + length]))
        del self.buf[:1 + length]
        return msg

    def read_until_ready(self, timeout: float = 10.0) -> list[Message]:
        """Messages up to and including ReadyForQuery."""
        deadline = time.monotonic() + timeout
        out = []
        while True:
            msg = self.read_message(max(0.01, deadline - time.monotonic()))
            out.append(msg)
            if msg.type == b"Z":
                return out

    def read_until_closed(self, timeout: float = 5.0) -> list[Message]:
        """Every message until the proxy closes the connection; TimeoutError if it stays open."""
        deadline = time.monotonic() + timeout
        out = []
        while True:
            try:
                out.append(self.read_message(max(0.01, deadline - time.monotonic())))
            except ClosedError:
                return out

    def query(self, sql: str, timeout: float = 10.0) -> list[Message]:
        self.send(query_message(sql))
        return self.read_until_ready(timeout)

    def login(self, user: str = "postgres", database: str = "app", password: str | None = None,
              params: dict[str, str] | None = None, timeout: float = 10.0) -> list[Message]:
        """Startup and authentication; returns the messages up to ReadyForQuery.

        Raises LoginRefused (with the ErrorResponse fields) if the proxy refuses.
        """
        p = {"user": user, "database": database}
        p.update(params or {})
        self.send(startup_packet(p))
        deadline = time.monotonic() + timeout
        scram: ScramClient | None = None
        out = []
        while True:
            msg = self.read_message(max(0.01, deadline - time.monotonic()))
            out.append(msg)
            if msg.type == b"E":
                raise LoginRefused(msg.error_fields(), out)
            if msg.type == b"R":
                (code,) = struct.unpack("!i", msg.payload[:4])
                if code == 0:
                    continue
                if password is None:
                    raise AssertionError(f"proxy asked for authentication (code {code}) but no password was given")
                if code == 5:  # MD5Password
                    salt = msg.payload[4:8]
                    self.send(frame(b"p", md5_response(user, password, salt).encode() + b"\x00"))
                elif code == 10:  # SASL
                    mechs = [m.decode() for m in msg.payload[4:].split(b"\x00") if m]
                    assert "SCRAM-SHA-256" in mechs, mechs
                    scram = ScramClient(password)
                    first = scram.client_first().encode()
                    self.send(frame(b"p", b"SCRAM-SHA-256\x00" + struct.pack("!i", len(first)) + first))
                elif code == 11:  # SASLContinue
                    assert scram is not None
                    self.send(frame(b"p", scram.client_final(msg.payload[4:].decode()).encode()))
                elif code == 12:  # SASLFinal
                    assert scram is not None
                    scram.verify_server_final(msg.payload[4:].decode())
                else:
                    raise AssertionError(f"unsupported authentication request {code}")
            elif msg.type == b"S":
                name, value, _ = msg.payload.split(b"\x00", 2)
                self.parameters[name.decode()] = value.decode()
            elif msg.type == b"K":
                self.backend_key = struct.unpack("!ii", msg.payload[:8])
            elif msg.type == b"Z":
                return out


class LoginRefused(Exception):
    def __init__(self, fields: dict[str, str], messages: list[Message]):
        super().__init__(f"login refused: {fields}")
        self.fields = fields
        self.messages = messages


def md5_response(user: str, password: str, salt: bytes) -> str:
    inner = hashlib.md5(password.encode() + user.encode()).hexdigest()
    return "md5" + hashlib.md5(inner.encode() + salt).hexdigest()


class ScramClient:
    """SCRAM-SHA-256 without channel binding (RFC 5802 / 7677), as libpq does without TLS."""

    def __init__(self, password: str):
        self.password = password
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.first_bare = f"n=,r={self.nonce}"
        self.server_signature = b""

    def client_first(self) -> str:
        return "n,," + self.first_bare

    def client_final(self, server_first: str) -> str:
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        assert attrs["r"].startswith(self.nonce), "server nonce does not extend the client's"
        salt = base64.b64decode(attrs["s"])
        iterations = int(attrs["i"])
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), salt, iterations)
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={attrs['r']}"
        auth_message = f"{self.first_bare},{server_first},{without_proof}".encode()
        client_signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, client_signature))
        server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        self.server_signature = hmac.new(server_key, auth_message, hashlib.sha256).digest()
        return f"{without_proof},p={base64.b64encode(proof).decode()}"

    def verify_server_final(self, server_final: str) -> None:
        attrs = dict(kv.split("=", 1) for kv in server_final.split(","))
        assert base64.b64decode(attrs["v"]) == self.server_signature, "server signature does not verify"


def data_rows(messages: list[Message]) -> list[list[str | None]]:
    """The text values of every DataRow among `messages`."""
    rows = []
    for m in messages:
        if m.type != b"D":
            continue
        (n,) = struct.unpack("!h", m.payload[:2])
        i = 2
        row: list[str | None] = []
        for _ in range(n):
            (ln,) = struct.unpack("!i", m.payload[i:i + 4])
            i += 4
            if ln < 0:
                row.append(None)
            else:
                row.append(m.payload[i:i + ln].decode())
                i += ln
        rows.append(row)
    return rows


def errors(messages: list[Message]) -> list[dict[str, str]]:
    return [m.error_fields() for m in messages if m.type == b"E"]
