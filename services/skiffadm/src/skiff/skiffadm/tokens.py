"""``skiffadm token create | list | delete``, as kubeadm's: bootstrap tokens are the
Secrets ``kube-system/bootstrap-token-<id>``; ``create --print-join-command`` prints the
exact ``skiffadm join`` line (the control plane's address and the CA pin from the
kubeconfig used)."""

from __future__ import annotations

import base64
import datetime as dt
import time
from pathlib import Path

import yaml
from cryptography import x509

from skiff.api.errors import ApiError
from skiff.api.timestamps import parse_time
from skiff.bootstrap import generate_token, parse_token, token_fields, token_secret
from skiff.client.rest import ApiClient
from skiff.pki import spki_sha256

NAMESPACE = "kube-system"
SECRETS = "secrets"


def join_command(kubeconfig: str, token: str) -> str:
    """``skiffadm join <host:port> --token ... --discovery-token-ca-cert-hash sha256:...``."""
    doc = yaml.safe_load(Path(kubeconfig).read_text()) or {}
    cluster = (doc.get("clusters") or [{}])[0].get("cluster") or {}
    server = str(cluster.get("server", "")).removeprefix("https://")
    ca = x509.load_pem_x509_certificate(base64.b64decode(cluster["certificate-authority-data"]))
    return (
        f"skiffadm join {server} --token {token} --discovery-token-ca-cert-hash {spki_sha256(ca)}"
    )


async def create(
    client: ApiClient,
    token: str = "",
    *,
    ttl: dt.timedelta | None,
    usages: list[str],
    groups: list[str],
    description: str = "",
) -> str:
    token = token or generate_token()
    parse_token(token)
    secret = token_secret(token, ttl=ttl, usages=usages, groups=groups, description=description)
    await client.create(SECRETS, secret, NAMESPACE)
    return token


async def delete(client: ApiClient, id_or_token: str) -> str:
    token_id = id_or_token.split(".", 1)[0]
    try:
        await client.delete(SECRETS, f"bootstrap-token-{token_id}", NAMESPACE)
    except ApiError as e:
        if e.code == 404:
            raise ValueError(f'bootstrap token "{token_id}" not found') from None
        raise
    return f'bootstrap token "{token_id}" deleted'


def _ttl(seconds_left: float) -> str:
    if seconds_left >= 3600:
        return f"{int(seconds_left // 3600)}h"
    if seconds_left >= 60:
        return f"{int(seconds_left // 60)}m"
    return f"{max(0, int(seconds_left))}s"


async def table(client: ApiClient, now: float | None = None) -> str:
    """kubeadm's ``token list`` table."""
    now = time.time() if now is None else now
    listing = await client.list(SECRETS, NAMESPACE)
    rows = [["TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS"]]
    for secret in listing["items"]:
        f = token_fields(secret)
        if not f.get("token-id"):
            continue
        expires = f.get("expiration", "")
        when = parse_time(expires) if expires else None
        usages = sorted(k.removeprefix("usage-bootstrap-") for k, v in f.items()
                        if k.startswith("usage-bootstrap-") and v == "true")  # fmt: skip
        rows.append(
            [
                f"{f['token-id']}.{f.get('token-secret', '')}",
                "<forever>" if when is None else _ttl(when - now),
                "<never>" if when is None else expires,
                ",".join(usages) or "<none>",
                f.get("description") or "<none>",
                f.get("auth-extra-groups") or "<none>",
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "".join(
        "   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n" for r in rows
    )
