-- The admin center and the console filter the Autopilot device list by `serialNumber eq` and
-- `groupTag eq`, which ignore case: the list compares under DMSYNC_UNICODE_NOCASE, so only
-- indexes under that collation serve them. `id` last keeps a filtered page in the keyset's order
-- and lets its `id > …` bound seek. Every connection dmsync opens registers the collation
-- (sql::sqlite_case_hooks).
CREATE INDEX autopilot_devices_serial_nocase
    ON autopilot_devices (tenant_id, serial_number COLLATE DMSYNC_UNICODE_NOCASE, id);
CREATE INDEX autopilot_devices_group_tag_nocase
    ON autopilot_devices (tenant_id, group_tag COLLATE DMSYNC_UNICODE_NOCASE, id);

-- Without statistics SQLite prefers the primary key for a page ordered by id, and would walk a
-- million-device tenant to find one serial number. These fixed statistics state the shape of a
-- large tenant (a serial number names one device, a group tag about a thousand), so a filtered
-- page searches its index and an unfiltered one keeps the primary key. `ANALYZE sqlite_schema`
-- creates sqlite_stat1 without analysing any table, and loads the rows.
ANALYZE sqlite_schema;
DELETE FROM sqlite_stat1 WHERE tbl = 'autopilot_devices';
INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES
    ('autopilot_devices', 'sqlite_autoindex_autopilot_devices_1', '1000000 1000000 1'),
    ('autopilot_devices', 'autopilot_devices_serial', '1000000 1000000 1'),
    ('autopilot_devices', 'autopilot_devices_serial_nocase', '1000000 1000000 1 1'),
    ('autopilot_devices', 'autopilot_devices_group_tag_nocase', '1000000 1000000 1000 1');
ANALYZE sqlite_schema;
