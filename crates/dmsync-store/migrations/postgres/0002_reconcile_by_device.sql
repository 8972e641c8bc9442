-- Reconciliation walks a tenant's registrations in device-id order and keeps those in the
-- window of the change sequence; this index serves both, as on SQLite.
CREATE INDEX autopilot_registrations_device_changes ON autopilot_registrations (tenant_id, device_id, change_seq);
DROP INDEX autopilot_registrations_changes;
