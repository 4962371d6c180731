"""The event stream's NATS server, secured (``python -m skiff.natsconf --pki DIR ...``
writes its configuration): TLS with client certificates of the cluster's NATS CA
(``pki/nats/``), each certificate's subject mapped to a user (``verify_and_map``), and
permissions so that only the event pump may publish watch events: the watch caches may
read the stream and make their consumers, never publish to it. An unauthorised publish
is refused by the server and never reaches a watcher."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from skiff.clusterpki import NATS_EVENT_PUMP, NATS_WATCH_CACHE

STREAM = "SKIFF_EVENTS"
SUBJECTS = "skiff.events.>"

_READ_STREAM = [
    "$JS.API.INFO",
    "$JS.API.STREAM.NAMES",
    f"$JS.API.STREAM.INFO.{STREAM}",
    f"$JS.API.STREAM.MSG.GET.{STREAM}",
    f"$JS.API.DIRECT.GET.{STREAM}",
    f"$JS.API.DIRECT.GET.{STREAM}.>",
]
PERMISSIONS = {
    NATS_EVENT_PUMP: {
        "publish": {
            "allow": [
                SUBJECTS,
                *_READ_STREAM,
                f"$JS.API.STREAM.CREATE.{STREAM}",
                f"$JS.API.STREAM.UPDATE.{STREAM}",
            ]
        },
        "subscribe": {"allow": ["_INBOX.>"]},
    },
    NATS_WATCH_CACHE: {
        "publish": {
            "allow": [
                *_READ_STREAM,
                f"$JS.API.CONSUMER.CREATE.{STREAM}",
                f"$JS.API.CONSUMER.CREATE.{STREAM}.>",
                f"$JS.API.CONSUMER.DELETE.{STREAM}.>",
                f"$JS.API.CONSUMER.INFO.{STREAM}.>",
                "$JS.FC.>",
                "$JS.ACK.>",
            ]
        },
        "subscribe": {"allow": ["_INBOX.>"]},
    },
}


def server_config(pki: Path, *, host: str, port: int, store_dir: Path) -> str:
    """nats-server's configuration (its format accepts JSON values)."""
    nats = pki / "nats"
    users = [{"user": f"CN={name}", "permissions": perms} for name, perms in PERMISSIONS.items()]
    tls = {
        "cert_file": str(nats / "server.crt"),
        "key_file": str(nats / "server.key"),
        "ca_file": str(nats / "ca.crt"),
        "verify_and_map": True,
    }
    return "\n".join(
        [
            f"host: {json.dumps(host)}",
            f"port: {port}",
            f"jetstream: {json.dumps({'store_dir': str(store_dir)})}",
            f"tls: {json.dumps(tls)}",
            f"authorization: {json.dumps({'users': users})}",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m skiff.natsconf", description=__doc__)
    p.add_argument("--pki", type=Path, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4222)
    p.add_argument("--store-dir", type=Path, required=True)
    p.add_argument("out", type=Path)
    a = p.parse_args(argv)
    a.out.write_text(server_config(a.pki, host=a.host, port=a.port, store_dir=a.store_dir))


if __name__ == "__main__":
    main()
