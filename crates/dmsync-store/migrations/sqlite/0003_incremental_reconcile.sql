-- Incremental reconciliation. Every registration write takes a new value of a global sequence
-- (system_state 'registration_seq'); deregistrations leave a tombstone with one. A tenant's
-- settings row remembers up to which value its devices are reconciled, so a sync touches only
-- what changed since, and a re-sync with no change costs almost nothing.
ALTER TABLE autopilot_registrations ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX autopilot_registrations_changes ON autopilot_registrations (tenant_id, change_seq);

CREATE TABLE registration_tombstones (
    tenant_id  TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    change_seq INTEGER NOT NULL
);
CREATE INDEX registration_tombstones_changes ON registration_tombstones (tenant_id, change_seq);

ALTER TABLE autopilot_settings ADD COLUMN reconciled_seq INTEGER NOT NULL DEFAULT 0;
