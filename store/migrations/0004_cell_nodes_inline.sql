-- A cell's nodes also inline, in position order (';'-joined), so that a restart reads one
-- row per cell. cell_nodes stays: it keeps a server in a cell once and gives server loads.
ALTER TABLE cells ADD COLUMN nodes TEXT NOT NULL DEFAULT '';
UPDATE cells SET nodes = COALESCE((
    SELECT group_concat(server_id, ';' ORDER BY position)
    FROM cell_nodes WHERE cell_nodes.cell_id = cells.cell_id
), '');
