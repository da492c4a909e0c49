"""The project status workflow: which status may follow which, and what a status change records.

The rules are data (TRANSITIONS), read by the checks on PUT and PATCH (geo/projects.py
`replace_project`) and served as a document (`GET /collections/projects/workflow`,
geo/routers/workflow.py), so that clients offer only the allowed next statuses and no list is kept in
step by hand. Keeping a status (the same status again) is always allowed and records nothing.

Decisions (written down in the README):
- A new project (POST, import) may start in any status: projects are often registered after they
  started (an import of projects under construction), and a cancelled one may be recorded for the record.
- `proposed` cannot be suspended: a proposal nobody pursues stays proposed or is cancelled; suspension
  is for work that was committed to (planned and later), and resumes to one of those stages.
- `completed` is final: the status donors and journalists trust most must not be undone by any editor
  with a key; rehabilitating a finished facility is a new project. (A mistaken `completed` is corrected
  outside the workflow, by an operator, not through the API.)
- `cancelled` can only be revived to `proposed`: a revived project starts its approvals again.

A status change's entry in `status_history` holds `status` and `at`, `by` (the name of the key that
made it, when keys have names: never the key), and the client's optional `note` and `source` (an
http(s) URL), sent as the Feature's foreign member `status_change` (StatusChangeRequest).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from geo.errors import GeoError, InvalidFeature
from geo.models import LongText, SourceUrl, Status

P, PL, A, U, C, S, X = (Status.proposed, Status.planned, Status.approved, Status.under_construction,
                        Status.completed, Status.suspended, Status.cancelled)

# Each status and the statuses that may follow it (besides itself), in the life cycle's order.
TRANSITIONS: dict[Status, tuple[Status, ...]] = {
    P: (PL, A, X),
    PL: (A, S, X),
    A: (U, S, X),
    U: (C, S, X),
    C: (),
    S: (PL, A, U, X),
    X: (P,),
}
# The statuses a new project may have.
INITIAL: tuple[Status, ...] = tuple(Status)
# The Feature's foreign member (RFC 7946 6.1) that carries a status change's note and source.
CHANGE_MEMBER = "status_change"
NOTE_MAX = 1_000
SOURCE_MAX = 2_000


class Conflict(GeoError):
    """The request conflicts with the state of the resource (a refused status change, a duplicate)."""

    status, title, type_slug = 409, "Conflict", "conflict"


class TransitionRefused(Conflict):
    """A write would move a project's status along a transition the workflow does not allow."""

    title, type_slug = "Status change not allowed", "status-transition"


class StatusChangeRequest(BaseModel):
    """Why a status changes: sent beside the properties as the Feature's `status_change` member on POST,
    PUT and PATCH. It is not stored as a property; it goes into the new `status_history` entry."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    note: Annotated[LongText, Field(min_length=1, max_length=NOTE_MAX)] | None = Field(
        None, title="Note", description="Why the status changes (at most 1,000 characters).")
    source: Annotated[SourceUrl, Field(max_length=SOURCE_MAX)] | None = Field(
        None, title="Source", description="An http(s) URL that documents the change.")


def allowed_next(current: str) -> tuple[Status, ...]:
    """The statuses a project in `current` may move to (itself aside); none for an unknown status."""
    try:
        return TRANSITIONS[Status(current)]
    except ValueError:
        return ()


def check_transition(current: str | None, new: str) -> None:
    """Raise TransitionRefused (409 naming `status`, with the allowed ones) unless `current` -> `new` is
    allowed. A stored status outside the vocabulary (older data) may move to any status."""
    if current is None or current == new or current not in TRANSITIONS:
        return
    if Status(new) in allowed_next(current):
        return
    allowed = [s.value for s in allowed_next(current)]
    after = ", ".join(allowed) if allowed else "nothing: it is final"
    message = f"cannot change from {current!r} to {new!r}; from {current!r} it can change to {after}"
    raise TransitionRefused(f"status: {message}.", errors=[
        {"field": "status", "message": message, "current": current, "allowed": allowed}])


def take_change(body: object) -> tuple[object, StatusChangeRequest | None]:
    """The body without its `status_change` member, and that member checked (422 naming
    `status_change.<field>` when it is wrong); a body without one comes back as it is."""
    if not isinstance(body, dict) or CHANGE_MEMBER not in body:
        return body, None
    rest = {k: v for k, v in body.items() if k != CHANGE_MEMBER}
    raw = body[CHANGE_MEMBER]
    if raw is None:
        return rest, None
    try:
        return rest, StatusChangeRequest.model_validate(raw)
    except ValidationError as exc:
        errors = [{"field": ".".join([CHANGE_MEMBER, *(str(p) for p in e["loc"])]), "message": e["msg"]}
                  for e in exc.errors()]
        raise InvalidFeature("; ".join(f"{e['field']}: {e['message']}" for e in errors),
                             errors=errors) from exc


def history_entry(status: str, at: str, by: str | None = None,
                  change: StatusChangeRequest | None = None) -> dict[str, Any]:
    """One `status_history` entry: what was set only (no nulls), in a stable order."""
    entry: dict[str, Any] = {"status": status, "at": at}
    if by:
        entry["by"] = by
    if change is not None:
        entry.update(change.model_dump(mode="json", exclude_none=True))
    return entry


def document(base: str) -> dict[str, Any]:
    """The workflow as JSON: every status, the transitions from each, and the statuses a project may
    start in (`base`: the service root, for the document's links)."""
    href = f"{base}/collections/projects/workflow"
    return {
        "statuses": [s.value for s in Status],
        "initial": [s.value for s in INITIAL],
        "transitions": {s.value: [t.value for t in TRANSITIONS[s]] for s in Status},
        "final": [s.value for s in Status if not TRANSITIONS[s]],
        "change": {
            "member": CHANGE_MEMBER,
            "description": "Send `status_change: {note, source}` beside `properties` on POST, PUT or "
                           "PATCH to record why the status changes; it is kept in `status_history`.",
            "schema": StatusChangeRequest.model_json_schema(),
        },
        "links": [
            {"href": href, "rel": "self", "type": "application/json", "title": "The status workflow"},
            {"href": f"{base}/collections/projects", "rel": "collection", "type": "application/json",
             "title": "Projects"},
        ],
    }
