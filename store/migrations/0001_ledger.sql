-- The placement ledger: cells, their nodes (one row per node, so that server loads are a
-- view and a future PostgreSQL backend can lock per server), proposed and committed moves,
-- and the inventory versions the service has run on. Times are unix milliseconds.

CREATE TABLE inventory_versions (
    version   INTEGER PRIMARY KEY,
    -- 'bundled:small:0', 'dir:/path', 'upload:/path'
    source    TEXT    NOT NULL,
    -- directory to reload it from after a restart (NULL for the generated bundled zone)
    path      TEXT,
    loaded_at INTEGER NOT NULL,
    active    INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1))
);

-- At most one active version.
CREATE UNIQUE INDEX inventory_versions_one_active ON inventory_versions (active) WHERE active = 1;

CREATE TABLE cells (
    cell_id             TEXT    PRIMARY KEY NOT NULL,
    -- client server ids joined by ';' (as in the placement export)
    clients             TEXT    NOT NULL,
    size                INTEGER NOT NULL CHECK (size > 0),
    colour              TEXT,
    risk                REAL    NOT NULL,
    single_failure_safe INTEGER NOT NULL CHECK (single_failure_safe IN (0, 1)),
    -- inventory version the risk was computed on
    inventory_version   INTEGER NOT NULL,
    version             INTEGER NOT NULL CHECK (version > 0),
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE cell_nodes (
    cell_id   TEXT    NOT NULL REFERENCES cells (cell_id) ON DELETE CASCADE,
    position  INTEGER NOT NULL,
    server_id TEXT    NOT NULL,
    PRIMARY KEY (cell_id, position),
    UNIQUE (cell_id, server_id)
) WITHOUT ROWID;

CREATE INDEX cell_nodes_server ON cell_nodes (server_id);

CREATE VIEW server_loads AS
    SELECT server_id, COUNT(*) AS load FROM cell_nodes GROUP BY server_id;

CREATE TABLE moves (
    cell_id      TEXT    NOT NULL REFERENCES cells (cell_id) ON DELETE CASCADE,
    n            INTEGER NOT NULL CHECK (n > 0),
    out_server   TEXT    NOT NULL,
    into_server  TEXT    NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('proposed', 'committed', 'superseded')),
    -- the cell version the move was proposed against; a commit needs it unchanged
    cell_version INTEGER NOT NULL,
    risk_before  REAL    NOT NULL,
    risk_after   REAL    NOT NULL,
    safe_after   INTEGER NOT NULL CHECK (safe_after IN (0, 1)),
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (cell_id, n)
) WITHOUT ROWID;
