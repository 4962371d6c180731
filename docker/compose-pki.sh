#!/bin/bash
# The compose deployment's first one-shot (compose.yaml's `pki`), as `kubeadm init`'s certs
# and kubeconfig phases: the cluster's CAs, certificates and keys and every component's
# kubeconfig under /etc/kubernetes (the `pki` volume, kept across `up`s), NATS's
# configuration with its TLS users, and for joining nodes only what `kubeadm join` is given:
# a new bootstrap token and the CA's public-key hash (the `join` volume). Keys are readable
# only by the user of the images that need them (the Python components' 10001, etcd's
# 10002, NATS's 10003).
set -euo pipefail
K=/etc/kubernetes
PKI=$K/pki
ENDPOINT=${SKIFF_CONTROL_PLANE_ENDPOINT:-apiserver:6443}

python3 -m skiff.skiffadm init phase certs all --cert-dir "$PKI" --node-name apiserver \
  --apiserver-advertise-address 127.0.0.1 --apiserver-cert-extra-sans apiserver,localhost \
  --etcd-cert-extra-sans etcd,nats
python3 -m skiff.skiffadm init phase kubeconfig all --cert-dir "$PKI" --kubeconfig-dir "$K" \
  --node-name apiserver --control-plane-endpoint "$ENDPOINT"
python3 -m skiff.natsconf --pki "$PKI" --host 0.0.0.0 --port 4222 --store-dir /var/lib/nats "$K/nats.conf"

# A token for the nodes that join with this `up` (24 h, as kubeadm's; the bootstrap one-shot
# creates it once the apiserver answers) and the CA pin they check the control plane by.
python3 -m skiff.skiffadm token generate >/join/token.new && mv /join/token.new /join/token
python3 - "$PKI/ca.crt" >/join/ca-cert-hash <<'PY'
import sys
from cryptography import x509
from skiff.pki import spki_sha256
print(spki_sha256(x509.load_pem_x509_certificate(open(sys.argv[1], "rb").read())))
PY
chmod 0644 /join/token /join/ca-cert-hash

# Owners: the Python components run as 10001, etcd as 10002, NATS as 10003 (their images').
chown -R 10001:10001 "$K"
chown 10002:10002 "$PKI"/etcd/server.* "$PKI"/etcd/peer.* "$PKI"/etcd/healthcheck-client.*
chown 10003:10003 "$PKI"/nats/server.* "$K/nats.conf"
find "$PKI" -name '*.crt' -exec chmod 0644 {} +
find "$PKI" -name '*.key' -exec chmod 0600 {} +
chmod 0755 "$K" "$PKI" "$PKI/etcd" "$PKI/nats"
echo "[compose-pki] certificates, kubeconfigs and the join token are ready"
