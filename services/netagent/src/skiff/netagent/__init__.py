"""skiff-netagent: the pod network between nodes (flannel's host-gw back end).

On every node it routes each other node's pod CIDR via that node's address, removes the
routes of nodes that are gone, and masquerades only traffic that leaves the cluster's pod
CIDR, so pods on different nodes reach each other by pod IP, without NAT. And it enforces
NetworkPolicies for the node's pods with iptables (``policy/``), which flannel does not.
"""
