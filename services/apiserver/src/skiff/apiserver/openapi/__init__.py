"""The ``/openapi/v3`` documents, built from the served resources and their schemas.

Laid out like kube-apiserver's own (``api/openapi-spec/v3`` in kubernetes/kubernetes):
one OpenAPI 3.0 document per group/version with the REST paths of its resources,
and ``components.schemas`` holding every definition those paths reach, converted
from the JSON-Schema form shipped by ``kubernetes-validate``.

kubectl needs two things from it: the PATCH operation of each kind must carry
``x-kubernetes-group-version-kind`` and declare the ``fieldValidation`` query
parameter (otherwise ``kubectl apply`` falls back to client-side validation), and
it must accept ``application/strategic-merge-patch+json`` so client-side apply
can build strategic merge patches from the schemas' patch extensions.

Documents are built on first use and cached; the index carries each document's
hash so clients can cache them forever.

The package is cut as kube-openapi is:

- :mod:`.schemas`: ``components.schemas``, converted from ``kubernetes-validate``'s
  definitions, and the definitions a document reaches;
- :mod:`.custom`: the schemas of the custom resources served now, as their CRDs give
  them (documents are built again when they change: :func:`forget`);
- :mod:`.parameters`: the query and path parameters, with Kubernetes' descriptions;
- :mod:`.paths`: the path items and operations of each resource (builder3);
- :mod:`.documents`: the documents, their hashes and the ``/openapi/v3`` index (handler3).
"""

from __future__ import annotations

from .documents import document, document_for_path, forget, hash_for_path, hash_of, index

__all__ = ["document", "document_for_path", "forget", "hash_for_path", "hash_of", "index"]
