"""A private certificate authority for the gateway's mutual TLS: the server's certificate, and client
certificates that carry a role and an identity in a SAN URI (frgateway://ROLE/IDENTITY)."""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
import re
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROLES = ("camera", "verifier", "integrator", "monitor", "operator", "auditor", "admin")
URI_SCHEME = "frgateway"
IDENTITY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
CA_FILES = ("ca.pem", "ca.key")
SERVER_FILES = ("server.pem", "server.key")


class CertificateError(Exception):
    """A certificate is missing, malformed, or names no role the gateway knows."""


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who a client certificate says the caller is."""

    role: str
    identity: str

    @property
    def uri(self) -> str:
        return f"{URI_SCHEME}://{self.role}/{self.identity}"

    def __str__(self) -> str:
        return f"{self.role}/{self.identity}"


def parse_principal(text: str) -> Principal:
    """'camera:CAM-017' or 'camera/CAM-017' (as on the command line) to a checked Principal."""
    role, _, identity = text.replace("/", ":", 1).partition(":")
    principal = Principal(role.strip(), identity.strip())
    _check(principal)
    return principal


def _check(principal: Principal) -> None:
    if principal.role not in ROLES:
        raise CertificateError(f"unknown role {principal.role!r}: one of {', '.join(ROLES)}")
    if not IDENTITY_PATTERN.match(principal.identity):
        raise CertificateError(f"identity {principal.identity!r}: 1-64 letters, digits, '.', '_' or '-'")


def principal_of(certificate: x509.Certificate) -> Principal:
    """The role and identity in the certificate's frgateway:// SAN URI; exactly one is required."""
    try:
        uris = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value \
            .get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    ours = [uri for uri in uris if uri.startswith(f"{URI_SCHEME}://")]
    if len(ours) != 1:
        raise CertificateError(f"the certificate carries {len(ours)} {URI_SCHEME}:// URIs, exactly one is required")
    role, _, identity = ours[0].removeprefix(f"{URI_SCHEME}://").partition("/")
    principal = Principal(role, identity)
    _check(principal)
    return principal


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fr-gateway"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@dataclasses.dataclass(frozen=True)
class Authority:
    """The CA's certificate and key, which sign every server and client certificate of one deployment."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls, name: str = "fr-gateway private CA", days: int = 3650) -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(certificate, key)

    @classmethod
    def load(cls, folder: Path) -> Authority:
        pem, key = (folder / name for name in CA_FILES)
        if not key.exists():
            raise CertificateError(f"no CA in {folder}: run `fr-gateway certs init --dir {folder}` first")
        return cls(x509.load_pem_x509_certificate(pem.read_bytes()),
                   serialization.load_pem_private_key(key.read_bytes(), password=None))

    def save(self, folder: Path) -> None:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        (folder / CA_FILES[0]).write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        _write_private(folder / CA_FILES[1], self.key)

    def issue(self, common_name: str, sans: Iterable[x509.GeneralName], server: bool, days: int,
              not_before: datetime.datetime | None = None) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """A leaf certificate for TLS server or client authentication; `not_before` lets tests make expired ones."""
        key = ec.generate_private_key(ec.SECP256R1())
        start = not_before or datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        certificate = (
            x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(self.certificate.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return certificate, key

    def issue_server(self, folder: Path, hosts: Iterable[str], days: int = 825, stem: str = "server") -> Path:
        sans: list[x509.GeneralName] = []
        for host in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        return self._save_leaf(folder, stem, *self.issue(f"fr-gateway {stem}", sans, server=True, days=days))

    def issue_client(self, folder: Path, principal: Principal, days: int = 365,
                     not_before: datetime.datetime | None = None, replace: bool = False) -> Path:
        """A client certificate; an existing one of the same principal is replaced only when asked, since its key
        may be the only copy a camera holds."""
        _check(principal)
        stem = f"{principal.role}-{principal.identity}"
        if not replace and (folder / f"{stem}.key").exists():
            raise CertificateError(f"{folder / stem}.key already exists: --force replaces it (the old certificate "
                                   "stays valid until it expires)")
        leaf = self.issue(str(principal), [x509.UniformResourceIdentifier(principal.uri)], server=False, days=days,
                          not_before=not_before)
        return self._save_leaf(folder, stem, *leaf)

    def _save_leaf(self, folder: Path, stem: str, certificate: x509.Certificate,
                   key: ec.EllipticCurvePrivateKey) -> Path:
        """Write STEM.pem (the certificate) and STEM.key (0600); return the .pem path."""
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        pem = folder / f"{stem}.pem"
        pem.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        _write_private(folder / f"{stem}.key", key)
        return pem


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    """PEM bytes a server or client needs: its certificate chain and key, and the CA it trusts."""

    certificate: bytes
    key: bytes
    ca: bytes

    @classmethod
    def load(cls, certificate: str | Path, key: str | Path, ca: str | Path) -> TlsFiles:
        paths = {"certificate": Path(certificate), "key": Path(key), "CA": Path(ca)}
        for what, path in paths.items():
            if not path.is_file():
                raise CertificateError(f"TLS {what} file {path} does not exist: create one with `fr-gateway certs "
                                       "init`, or run a plaintext gateway on loopback with --insecure")
        return cls(*(path.read_bytes() for path in paths.values()))

    @classmethod
    def from_flags(cls, certificate: str | None, key: str | None, ca: str | None) -> TlsFiles | None:
        """A client's files as given on the command line, checked as the gateway would check them, so a wrong file
        is named here rather than found as a refused handshake; None when none is given (plaintext)."""
        given = {"--cert": certificate, "--key": key, "--ca": ca}
        if not any(given.values()):
            return None
        if missing := [flag for flag, value in given.items() if not value]:
            raise CertificateError(f"mutual TLS needs --cert, --key and --ca together: {', '.join(missing)} missing")
        files = cls.load(certificate, key, ca)
        files.check_client(certificate)
        return files

    def check_client(self, where: str | Path = "the client certificate") -> Principal:
        """The principal of a client certificate that matches its key, was issued by the CA and is valid now."""
        try:
            leaf = x509.load_pem_x509_certificate(self.certificate)
            authority = x509.load_pem_x509_certificate(self.ca)
            key = serialization.load_pem_private_key(self.key, password=None)
        except ValueError as exc:
            raise CertificateError(f"{where}: a certificate, key or CA file is not PEM ({exc})") from None
        if key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) \
                != leaf.public_key().public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo):
            raise CertificateError(f"{where}: the key given with --key is not this certificate's key")
        try:
            leaf.verify_directly_issued_by(authority)
        except (ValueError, TypeError, InvalidSignature):
            raise CertificateError(f"{where} was not issued by the CA in --ca ({authority.subject.rfc4514_string()}): "
                                   "the gateway would refuse it; use a certificate from its CA (`fr-gateway certs "
                                   "issue`)") from None
        now = datetime.datetime.now(datetime.UTC)
        if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
            raise CertificateError(f"{where} is valid from {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} to "
                                   f"{leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, not now: the gateway would refuse "
                                   "it; issue a new one (`fr-gateway certs issue`)")
        return self.principal()

    def principal(self) -> Principal:
        """Who the certificate says the client is."""
        return principal_of(x509.load_pem_x509_certificate(self.certificate))

    @classmethod
    def for_client(cls, folder: str | Path, principal: Principal) -> TlsFiles:
        """The files `certs init` or `certs issue` wrote for this principal in `folder`."""
        folder = Path(folder)
        stem = f"{principal.role}-{principal.identity}"
        return cls.load(folder / f"{stem}.pem", folder / f"{stem}.key", folder / CA_FILES[0])
