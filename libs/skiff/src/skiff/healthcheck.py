"""``python3 -m skiff.healthcheck URL``: a container HEALTHCHECK for a component's /healthz.

Exits 0 when ``URL`` answers 2xx within two seconds, 1 otherwise. HTTPS certificates are
not verified: the components serve self-signed ones, and only liveness is asked.
"""

from __future__ import annotations

import ssl
import sys
import urllib.error
import urllib.request


def healthy(url: str, timeout: float = 2.0) -> bool:
    """Whether ``url`` answers with a 2xx status."""
    context = ssl._create_unverified_context() if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as r:
            return 200 <= r.status < 300
    except (OSError, urllib.error.URLError):
        return False


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python3 -m skiff.healthcheck URL")
    sys.exit(0 if healthy(sys.argv[1]) else 1)


if __name__ == "__main__":
    main()
