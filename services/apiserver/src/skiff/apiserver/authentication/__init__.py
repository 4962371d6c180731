"""Authentication, as kube-apiserver's authenticator chain: client certificates, then
bearer tokens (service-account JWTs, then bootstrap tokens), then anonymous.

A request with a client certificate the TLS handshake verified is that certificate's
user. Otherwise a bearer token (``Authorization: Bearer``, or the WebSocket subprotocol
``base64url.bearer.authorization.k8s.io.<token>``) must authenticate: a token no
authenticator accepts is a 401 even when anonymous requests are allowed. Without any
credential the request is ``system:anonymous`` (``--anonymous-auth``, on by default) or
a 401. Every authenticated user is also in ``system:authenticated``.
"""
