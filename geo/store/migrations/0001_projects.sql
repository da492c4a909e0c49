-- The PostGIS project store (geo/store/postgis.py): the projects, their change log, and the store's identity.

-- One row per project. `doc` is the feature exactly as the service encodes it (`json`, not `jsonb`, keeps
-- the text, so every replica computes the same ETag from it); the other columns are derived from it for
-- SQL and QGIS users and for indexes: never read back by the service.
CREATE TABLE projects (
    id          text PRIMARY KEY,
    position    bigint NOT NULL UNIQUE,  -- order of addition; a replace keeps it
    doc         json NOT NULL,
    geom        geometry(Geometry, 4326) NOT NULL,
    name        text,
    status      text,
    category    text,
    province    text,
    start_date  date,
    end_date    date,
    row_version bigint NOT NULL DEFAULT 1,  -- +1 on every write of the row
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX projects_geom_idx ON projects USING gist (geom);
CREATE INDEX projects_status_idx ON projects (status);
CREATE INDEX projects_category_idx ON projects (category);
CREATE INDEX projects_province_idx ON projects (province);

-- One row per write, in commit order (writers hold an advisory lock, so a reader that has seen seq n has
-- seen every seq below n): replicas replay it onto their in-memory table.
CREATE TABLE project_changes (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    op  text NOT NULL CHECK (op IN ('add', 'replace', 'delete')),
    fid text NOT NULL,
    doc json,  -- null for a delete
    CHECK ((op = 'delete') = (doc IS NULL))
);

CREATE TABLE store_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
-- A random identity made once: part of every version string, so two stores never share versions.
INSERT INTO store_meta (key, value) VALUES ('store_id', replace(gen_random_uuid()::text, '-', ''));
