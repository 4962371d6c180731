"""Hollow nodes: simulated kubelets for scale tests and benchmarks (like KWOK/kubemark)."""
