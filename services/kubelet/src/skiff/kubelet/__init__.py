"""The Skiff kubelet: pods on containerd over CRI (node runtime set-up so far)."""
