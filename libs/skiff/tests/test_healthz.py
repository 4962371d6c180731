"""Health endpoints in kube's format: ok, ?verbose, ?exclude, one check, failures."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from skiff import healthz

CHECKS = {"ping": True, "leaderElection": True, "broken": False}


def app(checks: dict[str, bool]) -> TestClient:
    def handler(request: Request) -> Response:
        return healthz.respond(request, "healthz", checks, request.path_params.get("check", ""))

    routes = [Route("/healthz", handler), Route("/healthz/{check}", handler)]
    return TestClient(Starlette(routes=routes))


def test_passing_checks() -> None:
    client = app({"ping": True, "leaderElection": True})
    assert client.get("/healthz").text == "ok"
    assert client.get("/healthz?verbose").text == (
        "[+]ping ok\n[+]leaderElection ok\nhealthz check passed\n"
    )
    assert client.get("/healthz/ping").text == "ok"
    assert client.get("/healthz/nothing").status_code == 404


def test_a_failing_check_lists_them_all_and_can_be_excluded() -> None:
    client = app(CHECKS)
    r = client.get("/healthz")
    assert r.status_code == 500
    assert r.text == (
        "[+]ping ok\n[+]leaderElection ok\n[-]broken failed: reason withheld\n"
        "healthz check failed\n"
    )
    assert client.get("/healthz/broken").status_code == 500
    r = client.get("/healthz?exclude=broken&verbose")
    assert r.status_code == 200 and "[+]broken excluded: ok" in r.text
