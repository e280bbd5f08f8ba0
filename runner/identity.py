"""Who a SageMaker resource belongs to: its name, our tags, the hash of its request.

Names are deterministic for a run and a job key, so a restarted run finds its
resources instead of creating second ones; our tags and the request hash let
it tell its own resource from someone else's of the same name.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

TAG_RUN = "smrun:run-id"
TAG_JOB = "smrun:job"
TAG_HASH = "smrun:request-hash"
OUR_TAGS = (TAG_RUN, TAG_JOB, TAG_HASH)

_NAME_HASH_LENGTH = 8


def resource_name(run_id: str, job_key: str, max_length: int) -> str:
    """A SageMaker resource name for a job of a run: ``{job_key}-{hash}``.

    Deterministic, so that a restarted run finds its resources; the hash of run
    id and key keeps names of different runs (and truncated keys) apart.
    """
    if max_length < 1:
        raise ValueError(f"max_length must be positive, got {max_length}")
    digest = hashlib.sha256(f"{run_id}\0{job_key}".encode()).hexdigest()[:_NAME_HASH_LENGTH]
    room = max_length - len(digest) - 1
    readable = re.sub(r"[^a-zA-Z0-9-]+", "-", job_key)[: max(room, 0)].strip("-")
    return f"{readable}-{digest}" if readable else digest[:max_length]


def request_hash(request: Mapping[str, Any], name_field: str) -> str:
    """A digest of what was asked for, without the name and our own tags, so a
    restarted run can tell its own resource from a different one of the same name."""
    body = {k: v for k, v in request.items() if k != name_field}
    if "Tags" in body:
        body["Tags"] = sorted(
            (t for t in body["Tags"] if t.get("Key") not in OUR_TAGS),
            key=lambda t: str(t.get("Key")),
        )
    canonical = json.dumps(body, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def tag_value(key: str) -> str:
    """A job key as a tag value: SageMaker allows only letters, digits, spaces
    and ``_.:/=+-@``, so an item's ``sweep[3]`` is ``sweep.3`` (a plain key,
    letters, digits and hyphens, is itself)."""
    return key.replace("[", ".").replace("]", "")


def with_our_tags(request: Mapping[str, Any], run_id: str, key: str, digest: str) -> dict[str, Any]:
    """``request`` with our tags (run, job, request hash) replacing any earlier ones."""
    ours = {TAG_RUN: run_id, TAG_JOB: tag_value(key), TAG_HASH: digest}
    tags = [t for t in request.get("Tags", []) if t.get("Key") not in ours]
    tags += [{"Key": k, "Value": v} for k, v in ours.items()]
    return {**request, "Tags": tags}


def is_ours(tags: Mapping[str, str], run_id: str, key: str) -> bool:
    """Whether a resource's tags say this run's job ``key`` created it."""
    return tags.get(TAG_RUN) == run_id and tags.get(TAG_JOB) == tag_value(key)
