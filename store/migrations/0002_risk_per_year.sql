-- The risk became a yearly outage probability over minimal cut sets (repair_hours): the
-- stored risks were computed under the old definition. Version 0 names no inventory, so
-- the service judges every cell again on its next start.
UPDATE cells SET inventory_version = 0;
