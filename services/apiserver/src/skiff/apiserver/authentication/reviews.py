"""authentication.k8s.io's reviews, created and answered but never stored: TokenReview
(is this bearer token valid, and whose is it: what a kubelet or webhook asks) and
SelfSubjectReview (who am I: ``kubectl auth whoami``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from skiff.api import errors
from skiff.api.timestamps import rfc3339

from .serviceaccount import InvalidToken
from .user import UserInfo

if TYPE_CHECKING:
    from .authenticator import Authenticator

GROUP_VERSION = "authentication.k8s.io/v1"


async def token_review(authenticator: Authenticator | None, body: dict[str, Any]) -> dict[str, Any]:
    """Answer a TokenReview: ``status.authenticated``, the user and the audiences, or the
    reason in ``status.error``."""
    spec = body.get("spec") or {}
    token = spec.get("token")
    if not isinstance(token, str) or not token:
        raise errors.bad_request("token is required for TokenReview in authentication")
    audiences = [a for a in spec.get("audiences") or [] if isinstance(a, str)]
    status: dict[str, Any] = {"authenticated": False}
    if authenticator is not None:
        try:
            found = await authenticator.authenticate_token(token, audiences or None)
            if found is None:
                status["error"] = "invalid bearer token"
            else:
                user, accepted = found
                status = {
                    "authenticated": True,
                    "user": user.authenticated().to_api(),
                    "audiences": accepted,
                }
        except InvalidToken as e:
            status["error"] = f"[invalid bearer token, {e}]"
    out_spec: dict[str, Any] = {"token": token}
    if audiences:
        out_spec["audiences"] = audiences
    return {
        "kind": "TokenReview",
        "apiVersion": GROUP_VERSION,
        "metadata": {"creationTimestamp": None},
        "spec": out_spec,
        "status": status,
    }


def self_subject_review(user: UserInfo) -> dict[str, Any]:
    """Answer a SelfSubjectReview with the requester's own user."""
    return {
        "kind": "SelfSubjectReview",
        "apiVersion": GROUP_VERSION,
        "metadata": {"creationTimestamp": rfc3339()},
        "status": {"userInfo": user.to_api()},
    }
