"""skiff-proxy: the node's Service proxy (kube-proxy's iptables mode).

One per node. Watches Services, EndpointSlices and its own Node through the shared
controller runtime and programs the ``nat`` and ``filter`` tables in kube-proxy's layout
(:mod:`skiff.proxy.iptables`).
"""
