-- The placement ledger on PostgreSQL: the same tables as the SQLite ledger at its fourth
-- migration (cells with their nodes inline and one row per node, moves, inventory
-- versions, plans and their steps), in PostgreSQL's types. Times are unix milliseconds.

CREATE TABLE inventory_versions (
    version   BIGINT  PRIMARY KEY,
    -- 'bundled:small:0', 'dir:/path', 'upload:/path'
    source    TEXT    NOT NULL,
    path      TEXT,
    loaded_at BIGINT  NOT NULL,
    active    BOOLEAN NOT NULL DEFAULT FALSE
);

-- At most one active version.
CREATE UNIQUE INDEX inventory_versions_one_active ON inventory_versions (active) WHERE active;

CREATE TABLE cells (
    cell_id             TEXT             PRIMARY KEY,
    -- client server ids joined by ';' (as in the placement export)
    clients             TEXT             NOT NULL,
    size                BIGINT           NOT NULL CHECK (size > 0),
    colour              TEXT,
    risk                DOUBLE PRECISION NOT NULL,
    single_failure_safe BOOLEAN          NOT NULL,
    -- inventory version the risk was computed on
    inventory_version   BIGINT           NOT NULL,
    version             BIGINT           NOT NULL CHECK (version > 0),
    created_at          BIGINT           NOT NULL,
    updated_at          BIGINT           NOT NULL,
    -- node server ids in position order, ';'-joined: a restart reads one row per cell
    nodes               TEXT             NOT NULL DEFAULT ''
);

CREATE TABLE cell_nodes (
    cell_id   TEXT   NOT NULL REFERENCES cells (cell_id) ON DELETE CASCADE,
    position  BIGINT NOT NULL,
    server_id TEXT   NOT NULL,
    PRIMARY KEY (cell_id, position),
    UNIQUE (cell_id, server_id)
);

CREATE INDEX cell_nodes_server ON cell_nodes (server_id);

CREATE VIEW server_loads AS
    SELECT server_id, COUNT(*) AS load FROM cell_nodes GROUP BY server_id;

CREATE TABLE moves (
    cell_id      TEXT             NOT NULL REFERENCES cells (cell_id) ON DELETE CASCADE,
    n            BIGINT           NOT NULL CHECK (n > 0),
    out_server   TEXT             NOT NULL,
    into_server  TEXT             NOT NULL,
    status       TEXT             NOT NULL CHECK (status IN ('proposed', 'committed', 'superseded')),
    cell_version BIGINT           NOT NULL,
    risk_before  DOUBLE PRECISION NOT NULL,
    risk_after   DOUBLE PRECISION NOT NULL,
    safe_after   BOOLEAN          NOT NULL,
    created_at   BIGINT           NOT NULL,
    updated_at   BIGINT           NOT NULL,
    PRIMARY KEY (cell_id, n)
);

CREATE TABLE plans (
    plan_id           TEXT             PRIMARY KEY,
    state             TEXT             NOT NULL CHECK (state IN
                          ('planned', 'executing', 'paused', 'cancelled', 'completed', 'invalidated')),
    inventory_version BIGINT           NOT NULL,
    request           TEXT             NOT NULL,
    summary           TEXT             NOT NULL,
    rate              DOUBLE PRECISION,
    concurrency       BIGINT,
    note              TEXT,
    created_at        BIGINT           NOT NULL,
    updated_at        BIGINT           NOT NULL
);

CREATE TABLE plan_steps (
    plan_id     TEXT             NOT NULL REFERENCES plans (plan_id) ON DELETE CASCADE,
    step        BIGINT           NOT NULL CHECK (step > 0),
    cell_id     TEXT             NOT NULL,
    remove      TEXT             NOT NULL,
    add_server  TEXT             NOT NULL,
    reason      TEXT             NOT NULL,
    risk_before DOUBLE PRECISION NOT NULL,
    risk_after  DOUBLE PRECISION NOT NULL,
    safe_after  BOOLEAN          NOT NULL,
    after_steps TEXT             NOT NULL,
    status      TEXT             NOT NULL CHECK (status IN ('pending', 'committed', 'replanned', 'skipped')),
    note        TEXT,
    updated_at  BIGINT           NOT NULL,
    PRIMARY KEY (plan_id, step)
);
