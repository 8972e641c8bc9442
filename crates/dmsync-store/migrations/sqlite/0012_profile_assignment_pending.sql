-- The assignment engine finds the devices waiting for their profile (status 'pending') and the
-- earliest of them without reading the tenant's other devices: a partial index holds only those,
-- so the syncs and imports that create devices ('notAssigned') never write to it.
CREATE INDEX autopilot_devices_pending_profile ON autopilot_devices (tenant_id, intended_at)
    WHERE profile_assignment_status = 'pending';
