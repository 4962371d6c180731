"""NetworkPolicy enforcement: ``model`` (what the policies allow each local pod),
``chains`` (that as iptables chains, written when they change), ``controller`` (the loop)."""
