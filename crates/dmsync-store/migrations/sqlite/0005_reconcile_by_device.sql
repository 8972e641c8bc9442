-- Reconciliation walks a tenant's registrations in device-id order and keeps those in the
-- window of the change sequence. This index answers both from the index alone; the index on
-- (tenant_id, change_seq) it replaces made each chunk rescan the whole window.
CREATE INDEX autopilot_registrations_device_changes ON autopilot_registrations (tenant_id, device_id, change_seq);
DROP INDEX autopilot_registrations_changes;
