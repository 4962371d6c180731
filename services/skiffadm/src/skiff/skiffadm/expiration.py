"""``skiffadm certs check-expiration``: every certificate of the control plane (the PKI
folder's and the kubeconfigs' embedded ones) with its expiry, as kubeadm prints it."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import yaml
from cryptography import x509

from skiff.clusterpki import CAS, leaves
from skiff.kubeconfigs import identities


def _load(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None


def _kubeconfig_cert(path: Path) -> x509.Certificate | None:
    try:
        config = yaml.safe_load(path.read_text())
        data = config["users"][0]["user"]["client-certificate-data"]
        return x509.load_pem_x509_certificate(base64.b64decode(data))
    except (OSError, ValueError, KeyError, IndexError, TypeError, yaml.YAMLError):
        return None


def residual(expires: dt.datetime, now: dt.datetime) -> str:
    """kubeadm's RESIDUAL TIME: years, days, hours or minutes left (``<invalid>`` when past)."""
    left = expires - now
    if left.total_seconds() <= 0:
        return "<invalid>"
    if left.days >= 365:
        return f"{left.days // 365}y"
    if left.days >= 1:
        return f"{left.days}d"
    hours = int(left.total_seconds() // 3600)
    return f"{hours}h" if hours else f"{int(left.total_seconds() // 60)}m"


def _when(expires: dt.datetime) -> str:
    return expires.strftime("%b %d, %Y %H:%M UTC")


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def report(pki: Path, kubeconfigs: Path, node_name: str, now: dt.datetime | None = None) -> str:
    """The two tables of ``kubeadm certs check-expiration``."""
    now = now or dt.datetime.now(dt.UTC)
    rows = [
        ["CERTIFICATE", "EXPIRES", "RESIDUAL TIME", "CERTIFICATE AUTHORITY", "EXTERNALLY MANAGED"]
    ]
    found: list[tuple[str, x509.Certificate | None, str]] = []
    for file, _user, _groups in identities(node_name):
        found.append((file, _kubeconfig_cert(kubeconfigs / file), "ca"))
    for leaf in leaves(node_name):
        found.append((leaf.path, _load(pki / f"{leaf.path}.crt"), leaf.ca))
    for name, cert, ca in sorted(found, key=lambda f: f[0]):
        if cert is None:
            rows.append([name, "<missing>", "", ca, "no"])
            continue
        expires = cert.not_valid_after_utc
        rows.append([name, _when(expires), residual(expires, now), ca, "no"])
    cas = [["CERTIFICATE AUTHORITY", "EXPIRES", "RESIDUAL TIME", "EXTERNALLY MANAGED"]]
    for path, _cn in CAS:
        cert = _load(pki / f"{path}.crt")
        if cert is None:
            cas.append([path, "<missing>", "", "no"])
        else:
            expires = cert.not_valid_after_utc
            cas.append([path, _when(expires), residual(expires, now), "no"])
    return "\n".join([*_table(rows), "", *_table(cas)]) + "\n"
