-- Rebalancing plans: the request, the state and what it planned (curve and unmet goals as
-- JSON), and one row per step with its progress. A step's commit writes its status in the
-- same transaction as the cell it moves, so progress is exactly what the cells show.

CREATE TABLE plans (
    plan_id           TEXT    PRIMARY KEY NOT NULL,
    state             TEXT    NOT NULL CHECK (state IN
                          ('planned', 'executing', 'paused', 'cancelled', 'completed', 'invalidated')),
    inventory_version INTEGER NOT NULL,
    -- the request as the API took it (goals, budget, seed), JSON
    request           TEXT    NOT NULL,
    -- the curve and the unmet goals, JSON
    summary           TEXT    NOT NULL,
    rate              REAL,
    concurrency       INTEGER,
    -- why the plan stopped or ended, when it says
    note              TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE plan_steps (
    plan_id     TEXT    NOT NULL REFERENCES plans (plan_id) ON DELETE CASCADE,
    step        INTEGER NOT NULL CHECK (step > 0),
    cell_id     TEXT    NOT NULL,
    remove      TEXT    NOT NULL,
    -- the server the node went to: the planned one, or the re-planned one
    add_server  TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    risk_before REAL    NOT NULL,
    risk_after  REAL    NOT NULL,
    safe_after  INTEGER NOT NULL CHECK (safe_after IN (0, 1)),
    -- earlier steps this one waits for, ';'-joined
    after_steps TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('pending', 'committed', 'replanned', 'skipped')),
    note        TEXT,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (plan_id, step)
) WITHOUT ROWID;
