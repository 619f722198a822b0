"""Certificates for Dask TLS between clients, scheduler and workers (opt-in: ``spec.tls.enabled``).

The operator makes a CA and one certificate for the cluster's processes once,
keeps them in the Secret ``<cluster>-tls`` (owned by the resource), and never
regenerates them while the Secret exists. Dask checks the CA, not host names,
so one leaf certificate serves scheduler, workers and clients.
"""

from __future__ import annotations

import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .builders.objects import ClusterRef, metadata

CA_FILE, CERT_FILE, KEY_FILE = "ca.pem", "tls.crt", "tls.key"
VALIDITY = datetime.timedelta(days=3650)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def make_certificates(ref: ClusterRef) -> dict[str, str]:
    """CA certificate, and a certificate + key for the cluster's scheduler, workers and clients."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name(f"{ref.name} CA")).issuer_name(_name(f"{ref.name} CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(now + VALIDITY)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    names = [ref.scheduler_name, f"{ref.scheduler_name}.{ref.namespace}", f"{ref.scheduler_name}.{ref.namespace}.svc",
             "localhost"]
    leaf = (x509.CertificateBuilder().subject_name(_name(ref.scheduler_name)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + VALIDITY)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    # The CA key is not kept: nothing else is ever signed for this cluster.
    return {CA_FILE: ca.public_bytes(serialization.Encoding.PEM).decode(),
            CERT_FILE: leaf.public_bytes(serialization.Encoding.PEM).decode(),
            KEY_FILE: _pem_key(key)}


def tls_secret(ref: ClusterRef, files: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": metadata(ref, ref.tls_secret_name, "tls"), "stringData": files}
