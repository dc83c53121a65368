-- The change log that lets several replicas share one ledger: every commit appends one row
-- naming the replica and the cells it touched, under a transaction-level advisory lock.
-- A replica commits only if no other replica put nodes on the same servers since the
-- state its changes were checked against (the database is the arbiter: capacity and a
-- shared quorum both need a node on one of those servers), and follows the others' rows
-- to keep its in-memory state current.
CREATE TABLE changes (
    seq       BIGSERIAL PRIMARY KEY,
    replica   TEXT      NOT NULL,
    -- cell ids touched (a commit of another replica on one of them conflicts too)
    cells     TEXT[]    NOT NULL,
    -- the servers the commit put nodes on: a commit of another replica conflicts with it
    -- only if it put nodes on one of them too
    servers   TEXT[]    NOT NULL,
    -- plan ids touched (a plan another replica made or changed since conflicts too)
    plans     TEXT[]    NOT NULL,
    -- the commit activated an inventory version
    inventory BOOLEAN   NOT NULL DEFAULT FALSE,
    at        BIGINT    NOT NULL
);

-- The active inventory's node capacity per server, as the replicas serve it: the database
-- checks every commit against it (a replica's own check saw only its own state).
CREATE TABLE server_capacity (
    server_id TEXT   PRIMARY KEY,
    capacity  BIGINT NOT NULL
);
