"""Build stored project features from checked client input."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from geo.errors import InvalidFeature
from geo.models import SERVER_FIELDS
from geo.validation import CheckedFeature
from geo.workflow import CHANGE_MEMBER, StatusChangeRequest, check_transition, history_entry

# Project properties are flat (a list of funders is the deepest): 32 is far beyond any real patch and far
# below Python's recursion limit.
MAX_PATCH_DEPTH = 32


def now_iso() -> str:
    """The current UTC time, to the second, in RFC 3339."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def new_id() -> str:
    """A fresh project id: short, URL-safe and unique."""
    return "p-" + uuid.uuid4().hex[:12]


def new_project(checked: CheckedFeature, province_names: Mapping[str, str], *, by: str | None = None,
                change: StatusChangeRequest | None = None) -> dict[str, Any]:
    """A new project feature with server-set id, province, timestamps and its first history entry
    (made `by` a key's name, with the client's note and source); any status may start (geo/workflow.py)."""
    stamp = now_iso()
    fid = new_id()
    props: dict[str, Any] = {
        **checked.properties,
        "province": checked.province,
        "province_name": province_names.get(checked.province or ""),
        "created_at": stamp,
        "updated_at": stamp,
        "status_history": [history_entry(checked.properties["status"], stamp, by, change)],
    }
    return {"type": "Feature", "id": fid, "geometry": checked.geometry, "properties": props}


def replace_project(current: dict[str, Any], checked: CheckedFeature,
                    province_names: Mapping[str, str], *, by: str | None = None,
                    change: StatusChangeRequest | None = None) -> dict[str, Any]:
    """The next version of a stored project from checked client input.

    The id and `created_at` stay; `updated_at` moves; the province follows the (new) geometry; a
    changed status must be allowed by the workflow (409, geo/workflow.py) and is appended to
    `status_history` with `by` (a key's name) and the client's `change` (note, source), which is
    refused (422) when the status stays. Nothing server-set is taken from the client.
    """
    stamp = now_iso()
    old = current["properties"]
    history = list(old.get("status_history") or [])
    status = checked.properties["status"]
    if status != old.get("status"):
        check_transition(old.get("status"), status)
        history.append(history_entry(status, stamp, by, change))
    elif change is not None:
        raise InvalidFeature.about(CHANGE_MEMBER, f"describes a status change, but the status stays "
                                                  f"{status!r}: leave it out or change the status")
    props: dict[str, Any] = {
        **checked.properties,
        "province": checked.province,
        "province_name": province_names.get(checked.province or ""),
        "created_at": old.get("created_at", stamp),
        "updated_at": stamp,
        "status_history": history,
    }
    return {"type": "Feature", "id": current["id"], "geometry": checked.geometry, "properties": props}


def nesting_depth(value: Any, limit: int) -> int:
    """How deeply objects and arrays nest in `value`, counted without recursion and up to `limit` + 1."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            if deepest > limit:
                break
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def merge_patch(target: Any, patch: Any, field: str = "properties") -> Any:
    """Apply an RFC 7386 JSON merge patch: objects merge, `null` removes, anything else replaces.

    A patch nested deeper than MAX_PATCH_DEPTH is refused (422 naming `field`) before any recursion.
    """
    if nesting_depth(patch, MAX_PATCH_DEPTH) > MAX_PATCH_DEPTH:
        message = f"a merge patch may nest objects and arrays at most {MAX_PATCH_DEPTH} deep"
        raise InvalidFeature.about(field, message)
    return _merge(target, patch)


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result


def client_view(feature: dict[str, Any]) -> dict[str, Any]:
    """A stored project as a client would send it: without the server-set properties."""
    props = {k: v for k, v in feature["properties"].items() if k not in SERVER_FIELDS}
    return {"type": "Feature", "geometry": feature["geometry"], "properties": props}
