-- Imported identities (importedWindowsAutopilotDeviceIdentities) and what device actions need.

CREATE TABLE imported_devices (
    tenant_id                    TEXT NOT NULL REFERENCES tenants (id),
    id                           TEXT NOT NULL,
    job_id                       TEXT NOT NULL,
    import_id                    TEXT NOT NULL,
    serial_number                TEXT NOT NULL,
    group_tag                    TEXT NOT NULL,
    product_key                  TEXT NOT NULL,
    hardware_hash                BLOB NOT NULL,
    hash_digest                  BLOB NOT NULL,
    assigned_user_principal_name TEXT NOT NULL,
    status                       TEXT NOT NULL,
    -- The id the device gets if the import succeeds; shown as deviceRegistrationId only then.
    pending_device_id            TEXT NOT NULL,
    device_registration_id       TEXT,
    error_code                   INTEGER NOT NULL DEFAULT 0,
    error_name                   TEXT,
    created_at                   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX imported_devices_job ON imported_devices (job_id);

ALTER TABLE autopilot_devices ADD COLUMN device_account_upn TEXT NOT NULL DEFAULT '';
ALTER TABLE autopilot_devices ADD COLUMN device_account_password TEXT NOT NULL DEFAULT '';
ALTER TABLE autopilot_devices ADD COLUMN device_friendly_name TEXT NOT NULL DEFAULT '';
ALTER TABLE autopilot_devices ADD COLUMN deletion_requested_at INTEGER;
CREATE INDEX autopilot_devices_serial ON autopilot_devices (tenant_id, serial_number);
