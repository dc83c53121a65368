-- The replica that commits every replica's writes (the writer lease's holder) and the
-- address the others forward their writes to. One row; the lease itself is a session
-- advisory lock, which the database gives back when its holder dies.
CREATE TABLE writer (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    url   TEXT    NOT NULL,
    since BIGINT  NOT NULL
);
