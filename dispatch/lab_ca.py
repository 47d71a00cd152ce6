"""A self-signed certificate authority and a server certificate, for a lab or a district
without a CA of its own (production uses the admin's certificate and key instead).

Invariants: the CA's key and the server key are written mode 0600 and never
overwritten; an existing CA in the folder signs the new server certificate, so
browsers that trust the CA once keep trusting every certificate it signs. The server
certificate names every host it is asked for (DNS names and IP addresses, as
subjectAltName), is valid 397 days (below browsers' 398-day ceiling) and is for TLS
servers only.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .errors import InvalidInput

CA_DAYS = 3650
SERVER_DAYS = 397


@dataclass(frozen=True)
class LabFiles:
    ca_cert: Path
    server_cert: Path  # the server certificate, then the CA's (the chain nginx sends)
    server_key: Path


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())  # fmt: skip


def _alt_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _ca(folder: Path, now: dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = folder / "ca.crt", folder / "ca.key"
    if cert_path.exists() and key_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise InvalidInput(str(key_path), "expected the EC key this command writes")
        return x509.load_pem_x509_certificate(cert_path.read_bytes()), key
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Pingan Dispatch lab CA"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "平安调度")])  # fmt: skip
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    _write_private(key_path, _key_pem(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def write_lab_ca(folder: Path, names: list[str], now: dt.datetime | None = None) -> LabFiles:
    """ca.crt/ca.key (made once) and server.crt/server.key for `names` in `folder`."""
    if not names:
        raise InvalidInput("--name", "name at least one host (DNS name or IP address)")
    folder.mkdir(parents=True, exist_ok=True)
    server_cert, server_key = folder / "server.crt", folder / "server.key"
    if server_cert.exists() or server_key.exists():
        raise InvalidInput(str(server_cert), "exists; move it away to make a new one")
    now = now or dt.datetime.now(dt.UTC)
    ca_cert, ca_key = _ca(folder, now)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName([_alt_name(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    _write_private(server_key, _key_pem(key))
    pem = serialization.Encoding.PEM
    server_cert.write_bytes(cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    return LabFiles(folder / "ca.crt", server_cert, server_key)
