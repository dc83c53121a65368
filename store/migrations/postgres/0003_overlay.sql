-- The health overlay and the settings, as in the SQLite ledger's fifth migration.
-- element_states holds the states reported at run time for elements of the active
-- inventory (failed, draining, or active again), on top of the inventory files: a restart
-- serves them again. A report replaces the whole overlay. settings holds the service's
-- settings changed at run time, one JSON value per key. A commit that changes either sets
-- `inventory` in its `changes` row, so that other replicas reload the zone state. Times are
-- unix milliseconds.

CREATE TABLE element_states (
    element TEXT   PRIMARY KEY,
    state   TEXT   NOT NULL CHECK (state IN ('failed', 'draining', 'active')),
    -- why, when the report says
    reason  TEXT,
    -- since when the state holds
    since   BIGINT NOT NULL
);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    -- JSON, as the caller wrote it
    value TEXT NOT NULL
);

COMMENT ON COLUMN changes.inventory IS
    'the commit activated an inventory version, or changed the health overlay or the settings';
