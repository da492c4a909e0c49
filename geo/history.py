"""A project's history and the changes feed, as JSON, from the store's record of changes
(geo.store.changes): what changed in each write is worked out here, by comparing each version with the
one before it, so the stores keep whole versions and nothing else."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from geo.store.changes import Change

# Properties every write refreshes or that have their own place in an event (the status and its note):
# listing them as field changes would only repeat the event.
NOT_FIELDS = frozenset({"updated_at", "status_history"})


def rfc3339(at: datetime) -> str:
    """`at` in RFC 3339, UTC, to the millisecond (`Z`, as the rest of the service writes times)."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def field_changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The fields that differ between two versions of a feature, each with `before` and `after` (null
    when absent), properties in name order, then `geometry`."""
    old = before["properties"] if before else {}
    new = after["properties"] if after else {}
    out = [{"field": name, "before": old.get(name), "after": new.get(name)}
           for name in sorted((set(old) | set(new)) - NOT_FIELDS) if old.get(name) != new.get(name)]
    old_geometry = before["geometry"] if before else None
    new_geometry = after["geometry"] if after else None
    if old_geometry != new_geometry:
        out.append({"field": "geometry", "before": old_geometry, "after": new_geometry})
    return out


def _status_entry(before: dict[str, Any] | None, after: dict[str, Any]) -> dict[str, Any] | None:
    """The `status_history` entry this write added (its note and source say why), if it added one."""
    old = (before or {"properties": {}})["properties"].get("status_history") or []
    new = after["properties"].get("status_history") or []
    if len(new) > len(old) and isinstance(new[-1], dict):
        return new[-1]
    return None


def event(change: Change, before: dict[str, Any] | None) -> dict[str, Any]:
    """One entry of a history: when, what, who, and the fields with their values before and after."""
    out: dict[str, Any] = {"seq": change.seq, "at": rfc3339(change.at), "op": change.op, "by": change.by}
    if change.op == "delete":
        return out
    after = change.feature
    assert after is not None  # only a delete has no feature
    if change.op == "restore":
        return out
    out["fields"] = field_changes(before, after)
    entry = _status_entry(before, after)
    if change.op == "status" or (change.op == "create" and entry is not None):
        status: dict[str, Any] = {"from": (before or {"properties": {}})["properties"].get("status"),
                                  "to": after["properties"].get("status")}
        for member in ("note", "source"):
            if entry is not None and entry.get(member):
                status[member] = entry[member]
        out["status"] = status
    return out


def timeline(changes: Sequence[Change]) -> list[dict[str, Any]]:
    """The events of one project's changes, in order: each compared with the version before it (a
    restore brings back the version that was deleted, so it changes no field)."""
    events: list[dict[str, Any]] = []
    last: dict[str, Any] | None = None
    for change in changes:
        events.append(event(change, last))
        if change.feature is not None:
            last = change.feature
    return events


def feed_entry(change: Change, items: str) -> dict[str, Any]:
    """One change in the changes feed: the project as it is after the change (none after a delete), and
    links to it (`items`: the projects' items URL) and to its history."""
    href = f"{items}/{change.fid}"
    return {"seq": change.seq, "at": rfc3339(change.at), "op": change.op, "collection": "projects",
            "id": change.fid, "by": change.by, "feature": change.feature,
            "links": [{"href": href, "rel": "item", "type": "application/geo+json"},
                      {"href": f"{href}/history", "rel": "history", "type": "application/json"}]}
