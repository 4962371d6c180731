"""skiff-dns: the cluster DNS server (Kubernetes DNS-based service discovery)."""
