"""Throwaway TLS material for tests: a CA and a certificate it issued, as PEM files."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


class TlsFiles:
    """PEM files of a throwaway CA and a server certificate it issued (valid one day).

    ``client_auth`` makes the certificate valid for client use too: a Redis Cluster bus
    authenticates its peers with the nodes' own certificates.
    """

    def __init__(self, directory: Path, *, hosts: Iterable[str], client_auth: bool = False) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        ca_key, ca_cert = _certificate("timeline-ws test CA", hosts=(), issuer=None)
        server_key, server_cert = _certificate(
            "timeline-ws test redis",
            hosts=tuple(hosts),
            issuer=(ca_key, ca_cert),
            client_auth=client_auth,
        )
        self.ca_cert = directory / "ca.pem"
        self.server_cert = directory / "server.pem"
        self.server_key = directory / "server.key"
        self.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        self.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
        self.server_key.write_bytes(
            server_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        self.server_key.chmod(0o600)


def _certificate(
    common_name: str,
    *,
    hosts: tuple[str, ...],
    issuer: tuple[rsa.RSAPrivateKey, x509.Certificate] | None,
    client_auth: bool = False,
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """A CA certificate (``issuer=None``, self-signed) or a server certificate for ``hosts``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    signing_key, issuer_name = (key, subject) if issuer is None else (issuer[0], issuer[1].subject)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is None:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        usages = [ExtendedKeyUsageOID.SERVER_AUTH]
        if client_auth:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return key, builder.sign(signing_key, hashes.SHA256())
