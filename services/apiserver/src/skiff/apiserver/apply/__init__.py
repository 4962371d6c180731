"""Server-side apply and ``metadata.managedFields``.

A Python rendering of ``sigs.k8s.io/structured-merge-diff`` (SMD) and of the
field-manager stack kube-apiserver wraps around it, cut as SMD is:

* :mod:`.fieldset`: :class:`FieldSet`, a set of field paths in the ``FieldsV1``
  JSON form (``{"f:spec": {"f:replicas": {}}}``), and path rendering.
* :mod:`.typed`: schema types compiled from the OpenAPI definitions (list types,
  map types, list-map keys; custom resources "deduced").
* :mod:`.merge`: ToFieldSet, Compare, Merge and prune over typed values.
* :mod:`.managedfields`: the ``managedFields`` entries, their encoding, the cap on
  Update managers, stripping never-owned fields, conflict errors.
* :mod:`.fieldmanager`: :func:`server_side_apply` (merge, prune, conflicts (409),
  the ``Apply`` entry) and :func:`track_update` (``Update`` ownership of ordinary
  writes).
"""

from __future__ import annotations

from skiff.apiserver.apply.fieldmanager import (
    LAST_APPLIED_ANNOTATION,
    fields_of,
    server_side_apply,
    track_update,
)
from skiff.apiserver.apply.fieldset import FieldSet, format_path, from_fields_v1, to_fields_v1
from skiff.apiserver.apply.managedfields import (
    ANCIENT_CHANGES,
    APPLY,
    MAX_UPDATE_MANAGERS,
    UPDATE,
)

__all__ = [
    "ANCIENT_CHANGES",
    "APPLY",
    "LAST_APPLIED_ANNOTATION",
    "MAX_UPDATE_MANAGERS",
    "UPDATE",
    "FieldSet",
    "fields_of",
    "format_path",
    "from_fields_v1",
    "server_side_apply",
    "to_fields_v1",
    "track_update",
]
