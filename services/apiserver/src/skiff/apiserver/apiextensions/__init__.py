"""CustomResourceDefinitions (apiextensions.k8s.io/v1): kube's apiextensions-apiserver,
built into the apiserver.

- :mod:`.validation`: the CRD's own rules (names, versions, subresources, printer
  columns, structural schemas) in kube's words;
- :mod:`.crschema`: a custom resource checked against its version's schema
  (kube-openapi's messages), defaulted and pruned.
"""
