"""Throw-away certificates for the bridge's TLS tests, made with the openssl CLI: a test CA with a server
certificate for 127.0.0.1 and a client certificate, and a second CA whose client certificate must be refused."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

CLIENT_SUBJECT = "/O=test/CN=device-1"


@dataclass(frozen=True)
class BridgePki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_client_cert: Path  # signed by another CA
    other_client_key: Path


def _openssl(folder: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)


def _ca(folder: Path, name: str) -> None:
    _openssl(folder, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
             "-keyout", f"{name}.key", "-out", f"{name}.pem")  # fmt: skip


def _signed(folder: Path, ca: str, name: str, subject: str, ext: str | None = None) -> None:
    _openssl(folder, "req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", f"{name}.key", "-out", f"{name}.csr")
    extra = ["-extfile", ext] if ext else []
    _openssl(folder, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
             "-days", "2", "-out", f"{name}.pem", *extra)  # fmt: skip


def make_bridge_pki(folder: Path) -> BridgePki:
    folder.mkdir(parents=True, exist_ok=True)
    _ca(folder, "ca")
    _ca(folder, "other-ca")
    # proton checks the peer name of an IP address against the CN and DNS names, not IP SANs
    (folder / "san.ext").write_text("subjectAltName=DNS:localhost,DNS:127.0.0.1,IP:127.0.0.1\n")
    _signed(folder, "ca", "server", "/CN=127.0.0.1", "san.ext")
    _signed(folder, "ca", "client", CLIENT_SUBJECT)
    _signed(folder, "other-ca", "other-client", CLIENT_SUBJECT)
    f = folder
    return BridgePki(
        f / "ca.pem", f / "server.pem", f / "server.key", f / "client.pem", f / "client.key",
        f / "other-client.pem", f / "other-client.key",
    )  # fmt: skip
