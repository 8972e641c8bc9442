-- The admin center and the console filter the Autopilot device list by `serialNumber eq` and
-- `groupTag eq`, which ignore case: the list compares `lower(column COLLATE "default")`, so
-- only an index on that very expression serves them; `id` last keeps a filtered page in the
-- keyset's order.
CREATE INDEX autopilot_devices_serial_nocase
    ON autopilot_devices (tenant_id, lower(serial_number COLLATE "default"), id);
CREATE INDEX autopilot_devices_group_tag_nocase
    ON autopilot_devices (tenant_id, lower(group_tag COLLATE "default"), id);
