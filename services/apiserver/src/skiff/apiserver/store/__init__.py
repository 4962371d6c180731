"""The generic store (kube's ``registry/generic/registry/store.go``): create, read, update,
patch, delete, list and watch.

Both the REST and the gRPC front ends call this one path, so admission,
defaulting, validation and storage rules hold whichever door a request uses.
What differs per resource is its strategy (:mod:`skiff.apiserver.registry`); the
rules around every write are :mod:`skiff.apiserver.registry.generic`'s; admission
plugins run after them (:mod:`skiff.apiserver.admission`). Subresources (status,
scale, binding, eviction, finalize) are the registry's handlers, reached through
:meth:`Store.get`, :meth:`Store.create_subresource`, :meth:`Store.update` and
:meth:`Store.patch`. Reads of single objects and paginated lists go to etcd; other
lists and all watches are served from the watch cache once it has reached the
revision the request needs.

:class:`Store` is put together from one module per concern, each a mixin on
:class:`~.base.StoreBase` (storage, admission chain, the one transactional write,
subresource lookup):

- :mod:`.reads`: get and list, list options, selector matching, continue tokens;
- :mod:`.watch`: watches from the watch cache;
- :mod:`.writes`: create and update (read-modify-write with CAS retries, key claims);
- :mod:`.patch`: JSON, merge and strategic-merge patches, server-side apply;
- :mod:`.delete`: graceful deletion, finalizers, preconditions, deletecollection.
"""

from __future__ import annotations

from ..registry.options import (
    PATCH_APPLY,
    PATCH_JSON,
    PATCH_MERGE,
    PATCH_STRATEGIC,
    DeleteOptions,
    WriteOptions,
)
from .delete import DeleteMixin
from .patch import PatchMixin
from .reads import ListOptions, ListResult
from .watch import WatchMixin, resolve

__all__ = [
    "PATCH_APPLY",
    "PATCH_JSON",
    "PATCH_MERGE",
    "PATCH_STRATEGIC",
    "DeleteOptions",
    "ListOptions",
    "ListResult",
    "Store",
    "WriteOptions",
    "resolve",
]


class Store(WatchMixin, PatchMixin, DeleteMixin):
    """Storage rules of the Kubernetes API, on etcd and the watch cache."""
