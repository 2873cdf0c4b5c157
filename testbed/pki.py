"""Per-run certificates for the local cluster, made with the openssl command (no Python crypto dependency)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# Imported as `_run`: tests/test_external_programs.py reads the program names of `_run("openssl", ...)` calls.
from testbed.procs import run as _run


def _openssl(*args: str) -> None:
    # Under procs' command timeout: an RSA key takes a second or two, everything else milliseconds.
    _run("openssl", *args)


@dataclass(frozen=True)
class Cert:
    name: str
    cn: str
    org: str = ""
    client: bool = True
    server: bool = False
    ips: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    extra: dict[str, str] = field(default_factory=dict)


def make_ca(pki: Path) -> None:
    pki.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(pki / "ca.key"), "-out", str(pki / "ca.crt"), "-days", "3650",
        "-subj", "/CN=prom-harness-k8s-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    )  # fmt: skip


def make_cert(pki: Path, cert: Cert) -> None:
    key, csr, crt, ext = (pki / f"{cert.name}.{s}" for s in ("key", "csr", "crt", "ext"))
    subj = (f"/O={cert.org}" if cert.org else "") + f"/CN={cert.cn}"
    _openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(csr), "-subj", subj,
    )  # fmt: skip
    usages = [u for u, on in (("clientAuth", cert.client), ("serverAuth", cert.server)) if on]
    lines = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        "extendedKeyUsage=" + ",".join(usages),
    ]
    sans = [f"IP:{ip}" for ip in cert.ips] + [f"DNS:{d}" for d in cert.dns]
    if sans:
        lines.append("subjectAltName=" + ",".join(sans))
    ext.write_text("\n".join(lines) + "\n")
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(pki / "ca.crt"), "-CAkey", str(pki / "ca.key"),
        "-CAcreateserial", "-days", "3650", "-out", str(crt), "-extfile", str(ext),
    )  # fmt: skip
    csr.unlink()
    ext.unlink()


def make_service_account_key(pki: Path) -> None:
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(pki / "sa.key"))
    _openssl("pkey", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))


def kubeconfig(path: Path, server: str, pki: Path, cert_name: str, user: str) -> None:
    """A kubeconfig that points at the files in `pki` (readable by kubectl and the Python client alike)."""
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: prom-harness
  cluster:
    server: {server}
    certificate-authority: {pki / "ca.crt"}
users:
- name: {user}
  user:
    client-certificate: {pki / (cert_name + ".crt")}
    client-key: {pki / (cert_name + ".key")}
contexts:
- name: prom-harness
  context:
    cluster: prom-harness
    user: {user}
current-context: prom-harness
"""
    )
