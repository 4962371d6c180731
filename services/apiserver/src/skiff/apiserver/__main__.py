"""``skiff-apiserver``: flags with environment-variable fallbacks."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os

from skiff.api.timestamps import parse_duration
from skiff.log import setup_logging
from skiff.tracing import setup_tracing

from .admission import ORDERED_PLUGINS, enabled_plugins
from .allocators import ServiceRanges
from .audit import AuditPolicyError, load_policy
from .authentication.requestheader import RequestHeaderConfig, load_certificates
from .authorization import MODES
from .podproxy import KubeletClientConfig
from .server import ApiServer, NatsTLS, Settings
from .storage import encryption
from .storage.etcd import EtcdTLS


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def parse_args(argv: list[str] | None = None) -> Settings:
    d = Settings()
    p = argparse.ArgumentParser(prog="skiff-apiserver", description=__doc__)
    p.add_argument(
        "--etcd-servers",
        default=_env("SKIFF_ETCD_SERVERS", d.etcd),
        help="etcd endpoint host:port (env SKIFF_ETCD_SERVERS)",
    )
    p.add_argument("--nats-ca-file", default="", help="the CA of NATS (TLS with client certs)")
    p.add_argument("--nats-cert-file", default="", help="the watch cache's NATS identity")
    p.add_argument("--nats-key-file", default="")
    p.add_argument("--nats-pump-cert-file", default="", help="the event pump's NATS identity")
    p.add_argument("--nats-pump-key-file", default="")
    p.add_argument("--etcd-cafile", default="", help="the CA of etcd's serving certificate")
    p.add_argument("--etcd-certfile", default="", help="the client certificate etcd asks for")
    p.add_argument("--etcd-keyfile", default="")
    p.add_argument("--audit-policy-file", default="", help="an audit.k8s.io/v1 Policy")
    p.add_argument("--audit-log-path", default="", help="audit events as JSON lines here")
    p.add_argument(
        "--encryption-provider-config",
        default=_env("SKIFF_ENCRYPTION_PROVIDER_CONFIG", ""),
        help="an EncryptionConfiguration file: resources encrypted at rest (aescbc, aesgcm)",
    )
    p.add_argument(
        "--nats-url", default=_env("SKIFF_NATS_URL", d.nats), help="NATS URL (env SKIFF_NATS_URL)"
    )
    p.add_argument(
        "--bind-address",
        default=_env("SKIFF_BIND_ADDRESS", d.bind_address),
        help="address to listen on; loopback until authentication lands",
    )
    p.add_argument(
        "--secure-port",
        "--port",
        dest="port",
        type=int,
        default=int(_env("SKIFF_PORT", str(d.port))),
    )
    p.add_argument(
        "--grpc-port",
        type=int,
        default=int(_env("SKIFF_GRPC_PORT", str(d.grpc_port))),
        help="port of the gRPC object API (0: off)",
    )
    p.add_argument(
        "--compaction-interval",
        type=float,
        default=float(_env("SKIFF_COMPACTION_INTERVAL", str(d.compaction_interval))),
        help="seconds between etcd compactions",
    )
    p.add_argument(
        "--compaction-keep",
        type=int,
        default=int(_env("SKIFF_COMPACTION_KEEP", str(d.compaction_keep))),
        help="etcd revisions kept by compaction",
    )
    p.add_argument(
        "--max-requests-inflight",
        type=int,
        default=int(_env("SKIFF_MAX_REQUESTS_INFLIGHT", str(d.max_requests_inflight))),
        help="with --max-mutating-requests-inflight, the requests executed at once that API "
        "Priority and Fairness shares among its priority levels",
    )
    p.add_argument(
        "--max-mutating-requests-inflight",
        type=int,
        default=int(
            _env("SKIFF_MAX_MUTATING_REQUESTS_INFLIGHT", str(d.max_mutating_requests_inflight))
        ),
        help="see --max-requests-inflight",
    )
    p.add_argument(
        "--service-cluster-ip-range",
        default=_env("SKIFF_SERVICE_CLUSTER_IP_RANGE", d.service_cluster_ip_range),
        help="CIDR Services' cluster IPs are assigned from (env SKIFF_SERVICE_CLUSTER_IP_RANGE)",
    )
    p.add_argument(
        "--service-node-port-range",
        default=_env("SKIFF_SERVICE_NODE_PORT_RANGE", d.service_node_port_range),
        help="first-last port for NodePort Services (env SKIFF_SERVICE_NODE_PORT_RANGE)",
    )
    p.add_argument(
        "--advertise-address",
        default=_env("SKIFF_ADVERTISE_ADDRESS", d.advertise_address),
        help="address published in the kubernetes Service's endpoints (default: the bind "
        "address, or this host's address when binding all)",
    )
    p.add_argument(
        "--enable-admission-plugins",
        default=_env("SKIFF_ENABLE_ADMISSION_PLUGINS", ",".join(d.enable_admission_plugins)),
        help="comma-separated admission plugins to enable besides the default ones "
        f"(default on: {', '.join(ORDERED_PLUGINS)}; env SKIFF_ENABLE_ADMISSION_PLUGINS)",
    )
    p.add_argument(
        "--disable-admission-plugins",
        default=_env("SKIFF_DISABLE_ADMISSION_PLUGINS", ",".join(d.disable_admission_plugins)),
        help="comma-separated admission plugins to disable, default ones included "
        "(env SKIFF_DISABLE_ADMISSION_PLUGINS)",
    )
    _security_flags(p, d)
    p.add_argument("--no-pump", action="store_true", help="do not campaign to run the event pump")
    p.add_argument("--log-level", default=_env("SKIFF_LOG_LEVEL", "info"))
    a = p.parse_args(argv)
    try:
        ServiceRanges.parse(a.service_cluster_ip_range, a.service_node_port_range)
    except ValueError as e:
        p.error(str(e))
    enable = _plugin_names(a.enable_admission_plugins)
    disable = _plugin_names(a.disable_admission_plugins)
    try:
        enabled_plugins(enable, disable)
    except ValueError as e:
        p.error(str(e))
    if a.encryption_provider_config:
        try:
            encryption.load(a.encryption_provider_config)
        except (OSError, encryption.EncryptionError) as e:
            p.error(f"--encryption-provider-config: {e}")
    if a.audit_policy_file:
        try:
            load_policy(a.audit_policy_file)
        except (OSError, AuditPolicyError) as e:
            p.error(f"--audit-policy-file: {e}")
    modes = _plugin_names(a.authorization_mode)
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        p.error(f"--authorization-mode: unknown mode(s) {', '.join(unknown) or '(none)'}")
    if bool(a.tls_cert_file) != bool(a.tls_private_key_file):
        p.error("--tls-cert-file and --tls-private-key-file go together")
    if bool(a.proxy_client_cert_file) != bool(a.proxy_client_key_file):
        p.error("--proxy-client-cert-file and --proxy-client-key-file go together")
    if a.requestheader_client_ca_file:
        try:
            load_certificates(a.requestheader_client_ca_file)
        except (OSError, ValueError) as e:
            p.error(f"--requestheader-client-ca-file: {e}")
    setup_logging("apiserver", level=a.log_level)
    return Settings(
        etcd=a.etcd_servers,
        encryption_provider_config=a.encryption_provider_config,
        audit_policy_file=a.audit_policy_file,
        audit_log_path=a.audit_log_path,
        etcd_tls=EtcdTLS(a.etcd_cafile, a.etcd_certfile, a.etcd_keyfile)
        if a.etcd_cafile or a.etcd_servers.startswith("https://")
        else None,
        nats=a.nats_url,
        nats_tls=NatsTLS(
            a.nats_ca_file,
            a.nats_cert_file,
            a.nats_key_file,
            a.nats_pump_cert_file,
            a.nats_pump_key_file,
        )
        if a.nats_ca_file
        else None,
        bind_address=a.bind_address,
        port=a.port,
        grpc_port=a.grpc_port,
        compaction_interval=a.compaction_interval,
        compaction_keep=a.compaction_keep,
        max_requests_inflight=a.max_requests_inflight,
        max_mutating_requests_inflight=a.max_mutating_requests_inflight,
        run_pump=not a.no_pump,
        service_cluster_ip_range=a.service_cluster_ip_range,
        service_node_port_range=a.service_node_port_range,
        advertise_address=a.advertise_address,
        enable_admission_plugins=enable,
        disable_admission_plugins=disable,
        tls_cert_file=a.tls_cert_file,
        tls_private_key_file=a.tls_private_key_file,
        client_ca_file=a.client_ca_file,
        anonymous_auth=a.anonymous_auth == "true",
        enable_bootstrap_token_auth=a.enable_bootstrap_token_auth,
        service_account_key_files=tuple(a.service_account_key_file),
        service_account_signing_key_file=a.service_account_signing_key_file,
        service_account_issuer=a.service_account_issuer,
        api_audiences=_plugin_names(a.api_audiences),
        service_account_max_token_expiration=a.service_account_max_token_expiration,
        authorization_modes=modes,
        kubelet=KubeletClientConfig(
            a.kubelet_client_certificate, a.kubelet_client_key, a.kubelet_certificate_authority
        ),
        proxy_client_cert_file=a.proxy_client_cert_file,
        proxy_client_key_file=a.proxy_client_key_file,
        request_header=RequestHeaderConfig(
            a.requestheader_client_ca_file,
            _plugin_names(a.requestheader_allowed_names),
            _plugin_names(a.requestheader_username_headers),
            _plugin_names(a.requestheader_group_headers),
            _plugin_names(a.requestheader_extra_headers_prefix),
        )
        if a.requestheader_client_ca_file
        else None,
    )


def _security_flags(p: argparse.ArgumentParser, d: Settings) -> None:
    """kube-apiserver's TLS, authentication and service-account token flags."""
    p.add_argument(
        "--tls-cert-file",
        default=_env("SKIFF_TLS_CERT_FILE", d.tls_cert_file),
        help="serve HTTPS with this certificate; without it the apiserver serves plain HTTP "
        "with no authentication (env SKIFF_TLS_CERT_FILE)",
    )
    p.add_argument("--tls-private-key-file", default=_env("SKIFF_TLS_PRIVATE_KEY_FILE", ""))
    p.add_argument(
        "--client-ca-file",
        default=_env("SKIFF_CLIENT_CA_FILE", ""),
        help="authenticate client certificates signed by this CA (CN = user, O = groups)",
    )
    p.add_argument(
        "--anonymous-auth",
        choices=("true", "false"),
        default=_env("SKIFF_ANONYMOUS_AUTH", "true"),
        help="requests without credentials are system:anonymous (false: 401)",
    )
    p.add_argument(
        "--requestheader-client-ca-file",
        default="",
        help="front proxies' CA: a client certificate it issued may name the user in the "
        "--requestheader-* headers (kubeadm: front-proxy-ca.crt)",
    )
    p.add_argument(
        "--requestheader-allowed-names",
        default="",
        help="comma-separated common names a front proxy's certificate may have (any if empty)",
    )
    p.add_argument("--requestheader-username-headers", default="")
    p.add_argument("--requestheader-group-headers", default="")
    p.add_argument("--requestheader-extra-headers-prefix", default="")
    p.add_argument(
        "--proxy-client-cert-file",
        default="",
        help="the certificate the aggregation layer presents to aggregated API servers "
        "(kubeadm: front-proxy-client.crt)",
    )
    p.add_argument("--proxy-client-key-file", default="")
    p.add_argument("--kubelet-client-certificate", default="")
    p.add_argument("--kubelet-client-key", default="")
    p.add_argument(
        "--kubelet-certificate-authority",
        default="",
        help="verify kubelets' serving certificates against this CA (else unverified)",
    )
    p.add_argument(
        "--authorization-mode",
        default=_env("SKIFF_AUTHORIZATION_MODE", ",".join(d.authorization_modes)),
        help=f"comma-separated, in order, of {', '.join(MODES)} (with TLS only; "
        "env SKIFF_AUTHORIZATION_MODE)",
    )
    p.add_argument(
        "--enable-bootstrap-token-auth",
        action="store_true",
        help="authenticate bootstrap tokens (Secrets kube-system/bootstrap-token-<id>)",
    )
    p.add_argument(
        "--service-account-key-file",
        action="append",
        default=[],
        help="PEM file of public keys that verify service-account tokens (repeatable; "
        "default: the signing key's public key)",
    )
    p.add_argument(
        "--service-account-signing-key-file",
        default=_env("SKIFF_SERVICE_ACCOUNT_SIGNING_KEY_FILE", ""),
        help="private key that signs service-account tokens (serviceaccounts/token)",
    )
    p.add_argument("--service-account-issuer", default=d.service_account_issuer)
    p.add_argument(
        "--api-audiences",
        default="",
        help="comma-separated audiences the API accepts in tokens (default: the issuer)",
    )
    p.add_argument(
        "--service-account-max-token-expiration",
        type=_duration_seconds,
        default=0,
        help="longest token lifetime granted (e.g. 24h; default: as requested)",
    )


def _duration_seconds(value: str) -> int:
    """Whole seconds of a Go duration (``24h``), as kube's flags take them."""
    try:
        return int(parse_duration(value))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _plugin_names(value: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in value.split(",") if n.strip())


def main(argv: list[str] | None = None) -> None:
    settings = parse_args(argv)
    setup_tracing("skiff-apiserver")
    # The watch cache holds every object: with CPython's default thresholds, full
    # collections walk that whole heap every few thousand allocations and stall
    # watch delivery. Collect the young generation less often instead.
    gc.set_threshold(50_000, 50, 100)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(ApiServer(settings).run_until_signalled())


if __name__ == "__main__":
    main()
