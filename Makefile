# Skiff: `make up` runs a one-machine cluster, `make test` runs the whole suite.
SHELL := /bin/bash
ROOT := $(abspath .)
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
# uv from PyPI, run as a module so that no PATH set-up is needed wherever pip put it.
UV := python3 -m uv
# Trust the machine's certificate store (needed behind TLS-intercepting proxies).
export UV_SYSTEM_CERTS := 1
DEB_PACKAGES := etcd-server etcd-client nats-server curl ca-certificates python3-venv python3-pip \
  containerd runc containernetworking-plugins busybox-static catatonit iptables iproute2 conntrack

.PHONY: deps deb-deps py-deps up down test unit lint bench proto clean \
  images compose-up compose-down test-compose

deps: deb-deps py-deps

# Debian packages: installed only when one is missing (apt-get update once first).
deb-deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# uv (from PyPI) and the workspace's locked Python environment in .venv.
py-deps:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install -q --user uv 2>/dev/null \
	  || python3 -m pip install -q --user --break-system-packages uv
	@$(UV) sync --frozen --all-packages -q

up: deps
	@scripts/cluster.sh up

down:
	@scripts/cluster.sh down

lint: py-deps
	$(VENV)/bin/ruff check .

unit: py-deps
	$(PY) -m pytest -q libs services

# Everything but the compose test, then the compose test (last: it starts dockerd, which
# changes the host's iptables). SKIFF_SKIP_COMPOSE=1 leaves the compose test out.
# SKIFF_REQUIRE_REAL_PARTS=1: every real part is installed by deps, so a test module whose
# part is missing fails instead of skipping.
test: deps
	$(VENV)/bin/ruff check .
	SKIFF_REQUIRE_REAL_PARTS=1 $(PY) -m pytest -q -p no:cacheprovider
	@if [ "$${SKIFF_SKIP_COMPOSE:-0}" != 1 ]; then $(MAKE) --no-print-directory test-compose; fi

bench: deps
	$(PY) bench/run.py
	$(PY) bench/security.py
	$(PY) bench/crds.py
	$(PY) bench/webhooks.py
	$(PY) bench/scheduler.py --profile 20
	$(PY) bench/kubelet.py
	$(PY) bench/controllers.py
	$(PY) bench/services.py
	$(PY) bench/validation.py
	$(PY) bench/deviceplugins.py
	$(PY) bench/proxy.py
	$(PY) bench/netpol.py
	$(PY) bench/cluster_dns.py
	$(PY) bench/compose.py
	$(PY) bench/skiffadm_init.py

# Regenerate the Python code for our .proto files (committed, so installs need no protoc);
# the CRI's goes to the kubelet, its only user; the device plugin and pod-resources
# APIs' to the shared library (the kubelet serves them; plugins and agents call them).
proto: py-deps
	$(PY) -m grpc_tools.protoc -Iproto --python_out=libs/skiff/src --pyi_out=libs/skiff/src \
	  --grpc_python_out=libs/skiff/src proto/skiff/rpc/v1/objects.proto
	$(PY) -m grpc_tools.protoc -Iproto --python_out=services/kubelet/src \
	  --pyi_out=services/kubelet/src --grpc_python_out=services/kubelet/src \
	  proto/skiff/cri/v1/api.proto
	$(PY) -m grpc_tools.protoc -Iproto --python_out=libs/skiff/src --pyi_out=libs/skiff/src \
	  $$(find proto/skiff/k8spb -name '*.proto')
	$(PY) -m grpc_tools.protoc -Iproto --python_out=libs/skiff/src --pyi_out=libs/skiff/src \
	  --grpc_python_out=libs/skiff/src proto/skiff/deviceplugin/v1beta1/api.proto \
	  proto/skiff/podresources/v1/api.proto

clean: down
	rm -rf .skiff

# docker compose deployment (compose.yaml; scripts/compose.sh): installs docker.io,
# docker-compose and debootstrap when missing, starts dockerd when none answers, builds a
# local Debian base image (no registry needed) and the Skiff images from it.
images:
	@scripts/compose.sh images

compose-up:
	@scripts/compose.sh up

compose-down:
	@scripts/compose.sh down

# The compose acceptance test (builds images, up with the tracing profile, Deployment,
# logs/exec, apiserver crash, traces, 3 nodes + DaemonSet, down -v) and the control plane as
# static pods from those images (test_static_control_plane.py): pytest skips them
# unless SKIFF_TEST_COMPOSE=1; installs Docker, docker-compose and debootstrap when missing.
test-compose: py-deps
	SKIFF_TEST_COMPOSE=1 SKIFF_REQUIRE_REAL_PARTS=1 $(PY) -m pytest -q -p no:cacheprovider \
	  tests/e2e/test_compose.py tests/e2e/test_static_control_plane.py
