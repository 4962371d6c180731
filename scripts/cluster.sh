#!/usr/bin/env bash
# Start or stop the one-machine Skiff cluster under .skiff/ (used by `make up` / `make down`).
# Every process started here is recorded in .skiff/pids/<name>.pid and only those are stopped.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=${SKIFF_STATE:-$ROOT/.skiff}
PIDS=$STATE/pids
LOGS=$STATE/logs
VENV=$ROOT/.venv
ETCD_PORT=${SKIFF_ETCD_PORT:-2379}
ETCD_PEER_PORT=${SKIFF_ETCD_PEER_PORT:-2380}
NATS_PORT=${SKIFF_NATS_PORT:-4222}
API_PORT=${SKIFF_API_PORT:-6443}
SCHEDULER_PORT=${SKIFF_SCHEDULER_PORT:-10259}
CONTROLLER_MANAGER_PORT=${SKIFF_CONTROLLER_MANAGER_PORT:-10257}
PROXY_PORT=${SKIFF_PROXY_PORT:-10256}
NETAGENT_PORT=${SKIFF_NETAGENT_PORT:-9099}
KUBELET_PORT=${SKIFF_KUBELET_PORT:-10250}
KUBELET_HEALTHZ_PORT=${SKIFF_KUBELET_HEALTHZ_PORT:-10248}
BRIDGE=${SKIFF_BRIDGE:-skiff0}
DNS_PORT=${SKIFF_DNS_PORT:-1053}
DNS_READY_PORT=${SKIFF_DNS_READY_PORT:-8181}
CLUSTER_DNS=${SKIFF_CLUSTER_DNS:-10.96.0.10}
NODE_NAME=${SKIFF_NODE_NAME:-$(hostname | tr '[:upper:]' '[:lower:]')}
PKI=$STATE/pki
CONFS=$STATE/kubeconfigs
ENDPOINT=127.0.0.1:$API_PORT
ADDONS=("$ROOT/deploy/kube-proxy.yaml" "$ROOT/deploy/network.yaml" "$ROOT/deploy/dns.yaml")

# A process that exited but was not reaped yet (where PID 1 does not reap, as in some
# containers) is a zombie: kill -0 still succeeds, yet it has stopped.
alive() { # pid
  kill -0 "$1" 2>/dev/null || return 1
  local stat; stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

running() { [ -f "$PIDS/$1.pid" ] && alive "$(cat "$PIDS/$1.pid")"; }

start_bg() { # name, command...
  local name=$1; shift
  if running "$name"; then echo "  $name already running (pid $(cat "$PIDS/$name.pid"))"; return; fi
  nohup "$@" >"$LOGS/$name.log" 2>&1 &
  echo $! >"$PIDS/$name.pid"
  echo "  started $name (pid $!, log $LOGS/$name.log)"
}

wait_for() { # description, command...
  local what=$1; shift
  for _ in $(seq 1 150); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "timed out waiting for $what" >&2
  return 1
}

# The cluster's CA and certificates and every component's kubeconfig, made once and kept
# (kubeadm's layout, by skiffadm): each component has its own identity.
certificates() {
  "$VENV/bin/skiffadm" init phase certs all --cert-dir "$PKI" --node-name "$NODE_NAME" \
    --apiserver-advertise-address 127.0.0.1 >"$LOGS/skiffadm.log"
  "$VENV/bin/skiffadm" init phase kubeconfig all --cert-dir "$PKI" --kubeconfig-dir "$CONFS" \
    --node-name "$NODE_NAME" --control-plane-endpoint "$ENDPOINT" >>"$LOGS/skiffadm.log"
  local pair
  for pair in proxy:system:kube-proxy dns:system:skiff-dns netagent:system:skiff-network; do
    local file=$CONFS/${pair%%:*}.conf
    [ -s "$file" ] && continue
    (umask 077; "$VENV/bin/skiffadm" kubeconfig user --client-name "${pair#*:}" \
      --cert-dir "$PKI" --control-plane-endpoint "$ENDPOINT" >"$file")
  done
}

up() {
  mkdir -p "$PIDS" "$LOGS" "$STATE/etcd" "$STATE/nats"
  echo "Starting Skiff in $STATE"
  certificates
  # etcd with TLS and client-certificate authentication, as kubeadm sets it up: only
  # holders of a certificate of etcd's own CA (the apiserver's) get in.
  local etcd_tls=(--cert-file "$PKI/etcd/server.crt" --key-file "$PKI/etcd/server.key"
    --client-cert-auth --trusted-ca-file "$PKI/etcd/ca.crt"
    --peer-cert-file "$PKI/etcd/peer.crt" --peer-key-file "$PKI/etcd/peer.key"
    --peer-client-cert-auth --peer-trusted-ca-file "$PKI/etcd/ca.crt")
  start_bg etcd etcd --name skiff --data-dir "$STATE/etcd" "${etcd_tls[@]}" \
    --listen-client-urls "https://127.0.0.1:$ETCD_PORT" --advertise-client-urls "https://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "https://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "https://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "skiff=https://127.0.0.1:$ETCD_PEER_PORT"
  # NATS with TLS, client certificates and permissions: only the apiserver's event pump
  # may publish watch events; the watch caches may only read them.
  "$VENV/bin/python" -m skiff.natsconf --pki "$PKI" --port "$NATS_PORT" \
    --store-dir "$STATE/nats" "$STATE/nats.conf"
  start_bg nats nats-server -c "$STATE/nats.conf"
  wait_for etcd etcdctl --endpoints "https://127.0.0.1:$ETCD_PORT" --cacert "$PKI/etcd/ca.crt" \
    --cert "$PKI/etcd/healthcheck-client.crt" --key "$PKI/etcd/healthcheck-client.key" \
    endpoint health
  wait_for nats bash -c "exec 3<>/dev/tcp/127.0.0.1/$NATS_PORT"
  start_bg apiserver "$VENV/bin/skiff-apiserver" --etcd-servers "https://127.0.0.1:$ETCD_PORT" \
    --etcd-cafile "$PKI/etcd/ca.crt" --etcd-certfile "$PKI/apiserver-etcd-client.crt" \
    --etcd-keyfile "$PKI/apiserver-etcd-client.key" \
    --nats-url "nats://127.0.0.1:$NATS_PORT" --nats-ca-file "$PKI/nats/ca.crt" \
    --nats-cert-file "$PKI/nats/watch-cache.crt" --nats-key-file "$PKI/nats/watch-cache.key" \
    --nats-pump-cert-file "$PKI/nats/event-pump.crt" \
    --nats-pump-key-file "$PKI/nats/event-pump.key" --port "$API_PORT" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" --service-account-key-file "$PKI/sa.pub" \
    --service-account-signing-key-file "$PKI/sa.key" --enable-bootstrap-token-auth \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction,ServiceAccount \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$PKI/ca.crt" \
    --requestheader-client-ca-file "$PKI/front-proxy-ca.crt" \
    --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$PKI/front-proxy-client.crt" \
    --proxy-client-key-file "$PKI/front-proxy-client.key"
  wait_for "apiserver /readyz" curl -sf --cacert "$PKI/ca.crt" "https://$ENDPOINT/readyz"
  # As kubeadm init goes on: a bootstrap token, the RBAC for joining nodes and for
  # admin.conf's group, the cluster-info ConfigMap; then admin.conf for the user.
  "$VENV/bin/skiffadm" init phase bootstrap-token --kubeconfig "$CONFS/super-admin.conf" \
    --cert-dir "$PKI" >>"$LOGS/skiffadm.log"
  install -m 600 "$CONFS/admin.conf" "$STATE/kubeconfig"
  start_bg scheduler "$VENV/bin/skiff-scheduler" --kubeconfig "$CONFS/scheduler.conf" \
    --port "$SCHEDULER_PORT"
  wait_for "scheduler /healthz" curl -sf "http://127.0.0.1:$SCHEDULER_PORT/healthz"
  start_bg controller-manager "$VENV/bin/skiff-controller-manager" \
    --kubeconfig "$CONFS/controller-manager.conf" --use-service-account-credentials \
    --controllers '*,bootstrapsigner,tokencleaner' --root-ca-file "$PKI/ca.crt" \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --port "$CONTROLLER_MANAGER_PORT"
  wait_for "controller-manager /healthz" \
    curl -sf "http://127.0.0.1:$CONTROLLER_MANAGER_PORT/healthz"
  # The add-ons' identities and roles (from deploy/, where their pods get them in compose).
  "$VENV/bin/python" -m skiff.addons --kubeconfig "$STATE/kubeconfig" \
    --kinds ServiceAccount,ClusterRole,ClusterRoleBinding "${ADDONS[@]}" >>"$LOGS/skiffadm.log"
  "$VENV/bin/python" -m skiff.kubelet.containerd_setup config --dir "$STATE/containerd" >/dev/null
  start_bg containerd containerd --config "$STATE/containerd/containerd.toml"
  "$VENV/bin/python" -m skiff.kubelet.containerd_setup images --dir "$STATE/containerd" >/dev/null
  mkdir -p "$STATE/manifests"
  # The kubelet's API answers only the authenticated and authorized (as kubeadm sets it).
  start_bg kubelet "$VENV/bin/skiff-kubelet" --kubeconfig "$CONFS/kubelet.conf" \
    --runtime-dir "$STATE/containerd" --pod-manifest-path "$STATE/manifests" \
    --node-name "$NODE_NAME" --cluster-dns "$CLUSTER_DNS" --port "$KUBELET_PORT" --bridge "$BRIDGE" \
    --client-ca-file "$PKI/ca.crt" --anonymous-auth false --authentication-token-webhook \
    --authorization-mode Webhook --healthz-port "$KUBELET_HEALTHZ_PORT" \
    --rotate-server-certificates
  wait_for "kubelet /healthz" curl -sf "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz"
  # Its API serves a certificate of the cluster CA once the controller manager signs it
  # (the apiserver verifies kubelets against that CA): a 401 means TLS checked out.
  wait_for "kubelet serving certificate" bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' \
    --cacert '$PKI/ca.crt' https://127.0.0.1:$KUBELET_PORT/healthz)\" = 401 ]"
  # The Service proxy: a process next to the kubelet here (a DaemonSet in compose), as
  # kube-proxy is. It writes this machine's iptables; `make down` removes its rules.
  start_bg proxy "$VENV/bin/skiff-proxy" --kubeconfig "$CONFS/proxy.conf" \
    --hostname-override "$NODE_NAME" --healthz-bind-address "127.0.0.1:$PROXY_PORT"
  wait_for "proxy /healthz" curl -sf "http://127.0.0.1:$PROXY_PORT/healthz"
  touch "$PIDS/proxy.started"
  # The pod network agent, for NetworkPolicies only: one node needs no routes, and the
  # kubelet's bridge masquerades. `make down` removes its chains.
  start_bg netagent "$VENV/bin/skiff-netagent" --kubeconfig "$CONFS/netagent.conf" \
    --hostname-override "$NODE_NAME" --routes false \
    --health-bind-address "127.0.0.1:$NETAGENT_PORT"
  wait_for "netagent /healthz" curl -sf "http://127.0.0.1:$NETAGENT_PORT/healthz"
  touch "$PIDS/netagent.started"
  # Cluster DNS: a process here too, answering on every address of this machine, published
  # as kube-system/kube-dns ($CLUSTER_DNS) with the node's pod gateway as its endpoint;
  # names outside the cluster go to this machine's resolvers.
  local upstream=()
  if [ -n "${SKIFF_DNS_UPSTREAM:-}" ]; then upstream=(--upstream "$SKIFF_DNS_UPSTREAM"); fi
  start_bg dns "$VENV/bin/skiff-dns" --kubeconfig "$CONFS/dns.conf" "${upstream[@]}" \
    --bind-address 0.0.0.0 --port "$DNS_PORT" --health-port 0 --ready-port "$DNS_READY_PORT" \
    --autopath
  wait_for "dns /ready" curl -sf "http://127.0.0.1:$DNS_READY_PORT/ready"
  "$VENV/bin/python" -m skiff.dns.publish --kubeconfig "$STATE/kubeconfig" --node "$NODE_NAME" \
    --port "$DNS_PORT" --cluster-ip "$CLUSTER_DNS" | sed 's/^/  /'
  if [ "${SKIFF_HOLLOW_NODES:-0}" -gt 0 ]; then
    # Simulated kubelets for many nodes at once: no one node's identity fits them.
    start_bg hollow-nodes "$VENV/bin/skiff-hollow-nodes" --kubeconfig "$CONFS/super-admin.conf" \
      --count "$SKIFF_HOLLOW_NODES"
  fi
  cat <<MSG

Skiff is up (etcd, NATS, apiserver, scheduler, controller-manager, containerd, kubelet, proxy, network agent, DNS). Use it with kubectl:
  export KUBECONFIG=$STATE/kubeconfig
  kubectl get namespaces
  kubectl run hello --image=busybox --restart=Never -- sh -c 'echo hello; sleep 3600'
  kubectl get pods -o wide
  kubectl logs hello; kubectl exec hello -- hostname
Static pods: put manifests in $STATE/manifests
Simulated nodes (no containers): SKIFF_HOLLOW_NODES=3 make up
Stop it with: make down
MSG
}

stop_one() {
  local name=$1
  if [ -f "$PIDS/$name.pid" ]; then
    local pid; pid=$(cat "$PIDS/$name.pid")
    if alive "$pid"; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do alive "$pid" || break; sleep 0.1; done
      alive "$pid" && kill -9 "$pid" 2>/dev/null || true
      echo "  stopped $name (pid $pid)"
    fi
    rm -f "$PIDS/$name.pid"
  fi
}

# `make down` stops pods as `kind delete` does, without waiting out their grace periods:
# each container gets SIGTERM, then SIGKILL after SKIFF_DOWN_GRACE seconds (default 1).
down() {
  local start=$SECONDS
  echo "Stopping Skiff (pods get ${SKIFF_DOWN_GRACE:-1} s after SIGTERM, as with kind delete)"
  stop_one hollow-nodes
  stop_one dns
  stop_one proxy
  if [ -f "$PIDS/proxy.started" ]; then
    "$VENV/bin/skiff-proxy" --cleanup >/dev/null 2>&1 && echo "  removed the proxy's iptables rules"
    rm -f "$PIDS/proxy.started"
  fi
  stop_one netagent
  if [ -f "$PIDS/netagent.started" ]; then
    "$VENV/bin/skiff-netagent" --cleanup >/dev/null 2>&1 \
      && echo "  removed the network agent's iptables rules"
    rm -f "$PIDS/netagent.started"
  fi
  stop_one kubelet
  if running containerd; then
    local out
    out=$("$VENV/bin/python" -m skiff.kubelet.containerd_setup cleanup --dir "$STATE/containerd" --bridge "$BRIDGE" \
      --grace "${SKIFF_DOWN_GRACE:-1}") \
      && echo "  $out; removed their network namespaces, the bridge and CNI chains"
  fi
  for name in containerd controller-manager scheduler apiserver nats etcd; do stop_one "$name"; done
  echo "Stopped in $((SECONDS - start)) s"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
