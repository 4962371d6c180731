"""skiffadm: kubeadm for Skiff. So far the offline phases: the control plane's
certificates and kubeconfigs, their expiry, and bootstrap tokens; ``init`` and ``join``
build on them."""
