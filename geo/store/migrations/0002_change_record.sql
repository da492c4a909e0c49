-- Every change kept (geo/store/changes.py): who made each change, what kind it was, and the client's
-- Idempotency-Key, so that history, soft delete, the changes feed and idempotent POSTs read the change log.
-- Old rows stay valid: their new columns are NULL, and a reader derives their kind from `op`
-- (geo/store/postgis.py `_KIND`).

ALTER TABLE project_changes
    ADD COLUMN by           text,  -- the key's name (never the key)
    ADD COLUMN kind         text CHECK (kind IN ('create', 'update', 'status', 'delete', 'restore')),
    ADD COLUMN idem         text,  -- geo.store.changes.scoped_key: the key's name and the Idempotency-Key
    ADD COLUMN request_hash text;  -- the digest of the request that used `idem`

-- A project's history, and "is this id known" for adds (ids are never reused).
CREATE INDEX project_changes_fid_seq_idx ON project_changes (fid, seq);
-- The feed's `since=<time>` (seq_before).
CREATE INDEX project_changes_at_idx ON project_changes (at, seq);
-- Idempotent adds: only the few rows that carry a key.
CREATE INDEX project_changes_idem_idx ON project_changes (idem, at) WHERE idem IS NOT NULL;

-- A project with no change row (inserted by hand into `projects`: the service always logs) gets a
-- 'create', so that its history starts and a deleted id stays known.
INSERT INTO project_changes (op, fid, doc, kind)
SELECT 'add', p.id, p.doc, 'create' FROM projects p
WHERE NOT EXISTS (SELECT 1 FROM project_changes c WHERE c.fid = p.id)
ORDER BY p.position;
