"""Throw-away TLS material so the test servers speak real TLS that clients can verify."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import uuid
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def make_self_signed_cert(directory: str | Path, hostname: str = "localhost") -> tuple[Path, Path]:
    """Write a self-signed certificate and its key into `directory`; return their paths.

    The certificate is its own CA (so a client can trust exactly this file) and names
    `hostname`, "localhost" and 127.0.0.1, so both name- and IP-based connections verify.
    An EC key keeps generation instant.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    # A unique subject per certificate: several of them in one CA bundle must not collide
    # when OpenSSL looks the issuer up by name.
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"crmsync test {uuid.uuid4().hex}"),
            x509.NameAttribute(NameOID.COMMON_NAME, hostname),
        ]
    )
    dns_names = dict.fromkeys([hostname, "localhost"])
    san: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    san.append(x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    certfile = directory / "cert.pem"
    keyfile = directory / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.touch(mode=0o600)
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certfile, keyfile


def client_ssl_context(cafile: str | Path) -> ssl.SSLContext:
    """A verifying client context that trusts only `cafile` (hostname checks stay on)."""
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cafile))


def server_ssl_context(certfile: str | Path, keyfile: str | Path) -> ssl.SSLContext:
    """A server-side context for Python servers (aiosmtpd) using the throw-away cert."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(certfile), str(keyfile))
    return context


def write_ca_bundle(certificates: list[Path], destination: Path) -> Path:
    """One PEM file trusting several throw-away test certificates."""
    destination.write_text("".join(cert.read_text() for cert in certificates))
    return destination
