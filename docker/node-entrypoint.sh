#!/bin/bash
# The node container's entrypoint: containerd (the project's config), the busybox and pause
# images and the add-ons' images, then the kubelet on this container's IP. catatonit is PID 1 (reaps shims' zombies).
set -euo pipefail
DIR=${SKIFF_RUNTIME_DIR:-/var/lib/skiff/containerd}
NODE_IP=${SKIFF_NODE_IP:-$(ip -4 -o route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p')}
NODE_IP=${NODE_IP:-$(hostname -i | cut -d' ' -f1)}
export SKIFF_NODE_NAME=${SKIFF_NODE_NAME:-$(hostname)}

# Docker mounts the cgroup hierarchy read-only unless privileged; runc must write there.
# cgroup v2 (private cgroup namespace): remount it read-write. cgroup v1: over each
# read-only controller mount, bind this container's own cgroup from a fresh read-write mount
# of the same hierarchy, so that the pods' cgroups nest under this container's (like kind).
fix_cgroups() {
  if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
    mount -o remount,rw /sys/fs/cgroup 2>/dev/null || echo "cannot remount /sys/fs/cgroup" >&2
    # No processes may sit in a cgroup that hands controllers to its children: move ours
    # to /init, then enable every controller for the pods' cgroups (as kind does).
    # Written for cgroup v2 hosts; the machines this was developed on run cgroup v1.
    mkdir -p /sys/fs/cgroup/init
    xargs -rn1 </sys/fs/cgroup/cgroup.procs >/sys/fs/cgroup/init/cgroup.procs 2>/dev/null || true
    sed -e 's/ / +/g' -e 's/^/+/' </sys/fs/cgroup/cgroup.controllers \
      >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null \
      || echo "cannot enable the cgroup v2 controllers" >&2
    return
  fi
  local self; self=$(awk -F: '$1 != "0" {print $3; exit}' /proc/self/cgroup)
  local tmp=/run/skiff-cgroup
  mkdir -p "$tmp"
  awk '{for (i = 7; $i != "-"; i++); if ($(i+1) == "cgroup" && $6 ~ /^ro/) print $5, $(i+3)}' \
    /proc/self/mountinfo | while read -r mnt opts; do
    opts=${opts/#ro,/rw,}
    if mount -t cgroup -o "$opts" cgroup "$tmp" 2>/dev/null; then
      if [ -d "$tmp$self" ]; then mount --bind "$tmp$self" "$mnt"; fi
      umount "$tmp"
    else
      echo "cannot mount the cgroup hierarchy $opts read-write" >&2
    fi
  done
}
fix_cgroups

# kube-proxy and the network add-on run unprivileged here (NET_ADMIN), and /proc/sys is
# read-only in this container too: the sysctls they need come from compose.yaml's
# `sysctls` (bridge-nf-call-iptables is on in a new network namespace). One iptables
# lock file for every writer on the node.
modprobe br_netfilter 2>/dev/null || true
touch /run/xtables.lock

# Docker's resolver answers at 127.0.0.11 inside this container's network namespace only.
# Pods that use the node's resolvers (dnsPolicy Default: the cluster DNS itself, and the
# host-network add-ons) get this node's address instead, through the kubelet's
# --resolv-conf, and DNAT takes their queries on to Docker's resolver (kind does the same;
# route_localnet lets routed packets reach 127.0.0.11).
expose_docker_dns() {
  grep -q '^nameserver 127\.0\.0\.11' /etc/resolv.conf || return 0
  local rules udp tcp chain
  rules=$(iptables-save -t nat)
  udp=$(sed -n 's/.*-d 127\.0\.0\.11\/32 -p udp .*--to-destination 127\.0\.0\.11:\([0-9]*\).*/\1/p' <<<"$rules")
  tcp=$(sed -n 's/.*-d 127\.0\.0\.11\/32 -p tcp .*--to-destination 127\.0\.0\.11:\([0-9]*\).*/\1/p' <<<"$rules")
  if [ -z "$udp" ] || [ -z "$tcp" ]; then
    echo "Docker's resolver ports not found: pods keep 127.0.0.11" >&2
    return 0
  fi
  for chain in PREROUTING OUTPUT; do
    iptables -w -t nat -A "$chain" -d "$NODE_IP/32" -p udp --dport 53 \
      -j DNAT --to-destination "127.0.0.11:$udp"
    iptables -w -t nat -A "$chain" -d "$NODE_IP/32" -p tcp --dport 53 \
      -j DNAT --to-destination "127.0.0.11:$tcp"
  done
  mkdir -p /etc/skiff
  sed "s/^nameserver 127\.0\.0\.11/nameserver $NODE_IP/" /etc/resolv.conf >/etc/skiff/resolv.conf
  export SKIFF_RESOLV_CONF=/etc/skiff/resolv.conf
}
expose_docker_dns

# containerd's CNI folder is $SKIFF_CNI_CONF_DIR (/etc/cni/net.d), where the network
# add-on (deploy/network.yaml) writes the configuration; the add-ons' images come from
# $SKIFF_IMAGE_DIR. The kubelet (--network-plugin cni) is not Ready until the add-on runs.
python3 -m skiff.kubelet.containerd_setup config --dir "$DIR" >/dev/null
containerd --config "$DIR/containerd.toml" >>"$DIR/../containerd.log" 2>&1 &
python3 -m skiff.kubelet.containerd_setup images --dir "$DIR" >/dev/null
# Joining, as `kubeadm join` does: discovery by the bootstrap token and the CA pin (the
# compose `join` volume holds both), then the kubelet's TLS bootstrap: its client
# certificate from a CertificateSigningRequest, its serving one from the cluster CA, both
# renewed before they expire. Its API answers only the authenticated and authorized.
SECURE=()
if [ -n "${SKIFF_JOIN_ENDPOINT:-}" ]; then
  python3 -m skiff.skiffadm join "$SKIFF_JOIN_ENDPOINT" --token "$(cat /join/token)" \
    --skip-phases kubelet-start \
    --discovery-token-ca-cert-hash "$(cat /join/ca-cert-hash)"
  SECURE=(--kubeconfig /etc/kubernetes/kubelet.conf
    --bootstrap-kubeconfig /etc/kubernetes/bootstrap-kubelet.conf
    --cert-dir /var/lib/skiff/kubelet/pki --rotate-certificates --rotate-server-certificates
    --client-ca-file /etc/kubernetes/pki/ca.crt --anonymous-auth false
    --authentication-token-webhook --authorization-mode Webhook --healthz-port 10248)
fi
exec python3 -m skiff.kubelet --runtime-dir "$DIR" --node-ip "$NODE_IP" --address 0.0.0.0 \
  --pod-manifest-path "${SKIFF_POD_MANIFEST_PATH:-/etc/skiff/manifests}" \
  --cluster-dns "${SKIFF_CLUSTER_DNS:-10.96.0.10}" "${SECURE[@]}" "$@"
