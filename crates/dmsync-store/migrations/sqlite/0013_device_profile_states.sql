-- The assignment engine's state of each device moves out of autopilot_devices into a narrow
-- table with a row only for a device under a profile. A pass used to rewrite the whole device
-- row of every device it moved, and the devices of a group are spread through the table, so a
-- pass over a tenth of a large tenant dirtied nearly every page of autopilot_devices and its
-- indexes; now it writes small rows of their own. A device without a row is 'notAssigned'.
CREATE TABLE device_profile_states (
    tenant_id           TEXT NOT NULL REFERENCES tenants (id),
    device_id           TEXT NOT NULL,
    intended_profile_id TEXT NOT NULL,
    intended_at         INTEGER NOT NULL,
    assigned_profile_id TEXT,
    profile_assigned_at INTEGER,
    status              TEXT NOT NULL,
    PRIMARY KEY (tenant_id, device_id)
) WITHOUT ROWID;
-- The devices waiting for their profile and the earliest of them; and the devices a profile is
-- assigned to (assignedDevices).
CREATE INDEX device_profile_states_pending ON device_profile_states (tenant_id, intended_at)
    WHERE status = 'pending';
CREATE INDEX device_profile_states_assigned ON device_profile_states (tenant_id, assigned_profile_id);

INSERT INTO device_profile_states (tenant_id, device_id, intended_profile_id, intended_at, assigned_profile_id,
                                   profile_assigned_at, status)
SELECT tenant_id, id, intended_profile_id, intended_at, assigned_profile_id, profile_assigned_at,
       profile_assignment_status
  FROM autopilot_devices
 WHERE intended_profile_id IS NOT NULL AND intended_at IS NOT NULL;

DROP INDEX autopilot_devices_intended_profile;
DROP INDEX autopilot_devices_pending_profile;
ALTER TABLE autopilot_devices DROP COLUMN intended_profile_id;
ALTER TABLE autopilot_devices DROP COLUMN intended_at;
ALTER TABLE autopilot_devices DROP COLUMN assigned_profile_id;
ALTER TABLE autopilot_devices DROP COLUMN profile_assigned_at;
ALTER TABLE autopilot_devices DROP COLUMN profile_assignment_status;

-- What the store reads a device as: its row and its assignment state. A query that uses none
-- of the state's columns does not read the state (the join is on the state's key).
CREATE VIEW autopilot_device_rows AS
SELECT d.*, s.intended_profile_id, s.intended_at, s.assigned_profile_id, s.profile_assigned_at,
       coalesce(s.status, 'notAssigned') AS profile_assignment_status
  FROM autopilot_devices d
  LEFT JOIN device_profile_states s ON s.tenant_id = d.tenant_id AND s.device_id = d.id;
