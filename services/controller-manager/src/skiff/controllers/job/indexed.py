"""Indexed Jobs (``indexed_job_utils.go``): completion indexes and the pods that carry them.

Each pod of an Indexed Job has a completion index in ``[0, completions)`` (annotation
and label ``batch.kubernetes.io/job-completion-index``, env ``JOB_COMPLETION_INDEX``,
hostname ``<job>-<index>``) and every index must succeed once; succeeded indexes are
recorded as ``status.completedIndexes`` (``0-2,4,6,7``).
"""

from __future__ import annotations

from collections.abc import Iterable

from skiff.client.rest import Obj
from skiff.controller.podcontrol import MAX_GENERATE_NAME_PREFIX

from ..pods import pods_to_delete

COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
"""Annotation (and label) with an Indexed Job pod's completion index."""
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"
UNKNOWN_INDEX = -1


def completion_index(pod: Obj) -> int:
    """The pod's completion index, or -1 when absent or malformed."""
    meta = pod["metadata"]
    raw = (meta.get("annotations") or {}).get(COMPLETION_INDEX)
    if raw is None:
        raw = (meta.get("labels") or {}).get(COMPLETION_INDEX)
    if raw is None or not raw.isdigit():
        return UNKNOWN_INDEX
    return int(raw)


def format_indexes(indexes: set[int]) -> str:
    """``0-2,4,6,7``: ranges of three or more with a dash (``orderedIntervals.String``)."""
    out: list[str] = []
    ordered = sorted(indexes)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        first, last = ordered[i], ordered[j]
        if last == first:
            out.append(str(first))
        elif last == first + 1:
            out.append(f"{first},{last}")
        else:
            out.append(f"{first}-{last}")
        i = j + 1
    return ",".join(out)


def parse_indexes(text: str | None, completions: int) -> set[int]:
    """The indexes below ``completions`` in a ``completedIndexes`` string (bad parts skipped)."""
    out: set[int] = set()
    for part in (text or "").split(","):
        first_s, _, last_s = part.partition("-")
        if not first_s.isdigit() or (last_s and not last_s.isdigit()):
            continue
        first = int(first_s)
        last = int(last_s) if last_s else first
        out.update(range(first, min(last, completions - 1) + 1))
    return out


def indexed_generate_name(job_name: str, index: int) -> str:
    """``<job>-<index>-``, the job name shortened so the generated name stays valid."""
    suffix = f"-{index}-"
    return job_name[: MAX_GENERATE_NAME_PREFIX - len(suffix)] + suffix


def first_pending_indexes(
    succeeded: set[int], active_pods: Iterable[Obj], count: int, completions: int
) -> list[int]:
    """The lowest ``count`` indexes neither succeeded nor held by an active pod."""
    taken = succeeded | {completion_index(p) for p in active_pods}
    out = []
    for ix in range(completions):
        if len(out) >= count:
            break
        if ix not in taken:
            out.append(ix)
    return out


def surplus_indexed_pods(
    active_pods: Iterable[Obj], succeeded: set[int], completions: int
) -> tuple[list[Obj], list[Obj]]:
    """(pods to remove, pods to keep): those with a bad or succeeded index, and all but
    the most advanced pod of a repeated index, go."""
    remove: list[Obj] = []
    keep: list[Obj] = []
    by_index: dict[int, list[Obj]] = {}
    for p in active_pods:
        ix = completion_index(p)
        if not 0 <= ix < completions or ix in succeeded:
            remove.append(p)
        else:
            by_index.setdefault(ix, []).append(p)
    for same in by_index.values():
        # Keep the most advanced pod of an index; the others go.
        doomed = pods_to_delete(same, len(same) - 1)
        remove.extend(doomed)
        keep.extend(p for p in same if p not in doomed)
    return remove, keep


def add_completion_index(template: Obj, job_name: str, index: int) -> None:
    """Give a pod template its index: annotation, label, hostname and env (in place)."""
    meta = template.setdefault("metadata", {})
    meta.setdefault("annotations", {})[COMPLETION_INDEX] = str(index)
    meta.setdefault("labels", {})[COMPLETION_INDEX] = str(index)
    pspec = template.setdefault("spec", {})
    pspec["hostname"] = f"{job_name}-{index}"
    env_var = {
        "name": COMPLETION_INDEX_ENV,
        "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']"}},
    }
    for kind in ("initContainers", "containers"):
        for c in pspec.get(kind) or ():
            env = c.setdefault("env", [])
            if not any(e.get("name") == COMPLETION_INDEX_ENV for e in env):
                env.append(env_var)
