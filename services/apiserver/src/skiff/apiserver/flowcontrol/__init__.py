"""API Priority and Fairness (flowcontrol.apiserver.k8s.io/v1), as far as Skiff goes: the
bootstrap configuration (:mod:`.bootstrap`) that every apiserver creates and keeps
(:mod:`.config`, with each FlowSchema's ``Dangling`` status), and the classification of
each request to a FlowSchema and priority level, reported in kube's response headers
(:mod:`.classifier`). Requests are not queued or limited by it.
"""
