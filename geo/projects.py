"""Build stored project features from checked client input."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from geo.validation import CheckedFeature


def now_iso() -> str:
    """The current UTC time, to the second, in RFC 3339."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def new_id() -> str:
    """A fresh project id: short, URL-safe and unique."""
    return "p-" + uuid.uuid4().hex[:12]


def new_project(checked: CheckedFeature, province_names: dict[str, str]) -> dict[str, Any]:
    """A new project feature with server-set id, province, timestamps and its first history entry."""
    stamp = now_iso()
    fid = new_id()
    props: dict[str, Any] = {
        **checked.properties,
        "province": checked.province,
        "province_name": province_names.get(checked.province or ""),
        "created_at": stamp,
        "updated_at": stamp,
        "status_history": [{"status": checked.properties["status"], "at": stamp}],
    }
    return {"type": "Feature", "id": fid, "geometry": checked.geometry, "properties": props}
