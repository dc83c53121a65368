-- The health overlay and the settings. element_states holds the states reported at run
-- time for elements of the active inventory (failed, draining, or active again), on top of
-- the inventory files: a restart serves them again. A report replaces the whole overlay.
-- settings holds the service's settings changed at run time, one JSON value per key.
-- Times are unix milliseconds.

CREATE TABLE element_states (
    element TEXT    PRIMARY KEY NOT NULL,
    state   TEXT    NOT NULL CHECK (state IN ('failed', 'draining', 'active')),
    -- why, when the report says
    reason  TEXT,
    -- since when the state holds
    since   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE settings (
    key   TEXT PRIMARY KEY NOT NULL,
    -- JSON, as the caller wrote it
    value TEXT NOT NULL
) WITHOUT ROWID;
