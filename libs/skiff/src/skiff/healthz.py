"""Health endpoints as Kubernetes components serve them (``k8s.io/apiserver/pkg/server/healthz``):
``/healthz`` (and ``/livez``, ``/readyz``) answer ``ok``; with ``?verbose`` one
``[+]<check> ok`` line per named check and ``healthz check passed``; ``?exclude=<check>``
leaves checks out; ``/healthz/<check>`` asks one; any failed check lists them all
(``[-]<check> failed: reason withheld``) and answers 500."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import Response


def respond(
    request: Request, endpoint: str, checks: Mapping[str, bool], single: str = ""
) -> Response:
    """The answer of ``/<endpoint>`` (or ``/<endpoint>/<single>``) for ``checks`` (name →
    whether it passes, in the order they are listed)."""
    if single:
        if single not in checks:  # no such path, as Go's mux answers
            return Response(b"404 page not found\n", 404, media_type="text/plain")
        ok = checks[single]
        return Response(b"ok" if ok else b"internal server error: check failed",
                        200 if ok else 500, media_type="text/plain")  # fmt: skip
    excluded = set(request.query_params.getlist("exclude"))
    failed = [n for n, ok in checks.items() if not ok and n not in excluded]
    verbose = "verbose" in request.query_params
    if not failed and not verbose:
        return Response(b"ok", media_type="text/plain")
    lines = [
        f"[+]{n} excluded: ok" if n in excluded else f"[+]{n} ok" if ok
        else f"[-]{n} failed: reason withheld"
        for n, ok in checks.items()
    ]  # fmt: skip
    lines.append(f"{endpoint} check {'failed' if failed else 'passed'}")
    return Response(("\n".join(lines) + "\n").encode(), 500 if failed else 200,
                    media_type="text/plain")  # fmt: skip
