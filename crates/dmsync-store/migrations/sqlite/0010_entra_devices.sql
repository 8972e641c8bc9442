-- Entra ID device objects (issue 17). Autopilot creates one for every device it registers, in
-- the transaction that creates the device; the Autopilot device keeps the object's deviceId as
-- its azureActiveDirectoryDeviceId. The object outlives the device (deleting an Autopilot
-- identity leaves its Entra object, as in Intune), so it is not keyed on the device.
-- physicalIds are kept as their parts: order_id is what a group tag change updates and what
-- dynamic group rules match.

ALTER TABLE autopilot_devices ADD COLUMN azure_ad_device_id TEXT NOT NULL DEFAULT '';

CREATE TABLE entra_devices (
    tenant_id         TEXT NOT NULL REFERENCES tenants (id),
    id                TEXT NOT NULL,
    device_id         TEXT NOT NULL,
    display_name      TEXT NOT NULL,
    operating_system  TEXT NOT NULL,
    account_enabled   INTEGER NOT NULL,
    trust_type        TEXT NOT NULL,
    -- The Autopilot device the object was created for ([ZTDID]); NULL for none.
    ztdid             TEXT,
    order_id          TEXT NOT NULL,
    purchase_order_id TEXT NOT NULL,
    hardware_id       TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX entra_devices_device_id ON entra_devices (tenant_id, device_id);
CREATE INDEX entra_devices_ztdid ON entra_devices (tenant_id, ztdid);

-- Devices from before this migration get their deviceId and their object now, with the same
-- expressions the store uses (Dialect::guid_like and Dialect::hardware_id).
UPDATE autopilot_devices SET azure_ad_device_id =
    substr(id, 1, 15) || substr(lower(hex(randomblob(8))), 1, 3) || '-' || substr('89ab', 1 + abs(random()) % 4, 1)
    || substr(lower(hex(randomblob(8))), 1, 3) || '-' || substr(lower(hex(randomblob(8))), 1, 12);

INSERT INTO entra_devices (tenant_id, id, device_id, display_name, operating_system, account_enabled, trust_type,
    ztdid, order_id, purchase_order_id, hardware_id, created_at)
SELECT d.tenant_id,
       substr(d.id, 1, 15) || substr(lower(hex(randomblob(8))), 1, 3) || '-' || substr('89ab', 1 + abs(random()) % 4, 1)
       || substr(lower(hex(randomblob(8))), 1, 3) || '-' || substr(lower(hex(randomblob(8))), 1, 12),
       d.azure_ad_device_id, d.serial_number, 'Windows', 1, 'AzureAd', d.id, d.group_tag, d.purchase_order_identifier,
       CASE WHEN r.hash_digest IS NULL THEN '' ELSE 'h:' || CAST((instr('0123456789ABCDEF', substr(hex(substr(r.hash_digest, 1, 7)), 1, 1)) - 1) * 281474976710656 + (instr('0123456789ABCDEF', substr(hex(substr(r.hash_digest, 1, 7)), 2, 1)) - 1) * 17592186044416 + (instr('0123456789ABCDEF', substr(hex(substr(r.hash_digest, 1, 7)), 3, 1)) - 1) * 1099511627776 + (instr('0123456789ABCDEF', substr(hex(substr(r.hash_digest, 1, 7)), 4, 1)) - 1) * 68719476736 + (instr('0123456789ABCDEF', substr(hex(substr(r.hash_digest, 1, 7)), 5, 1)) - 1) * 4294967296 + (instr('0123456789ABCDEF', substr(hex(substr(r.hash_digest, 1, 7)), 6, 1)) - 1) * 268435456 + (instr('0123456789ABCDEF', substr(hex(substr(r.hash_digest, 1, 7)), 7, 1)) - 1) * 16777216 + (instr('0123456789ABCDEF', substr(hex(substr(r.hash_digest, 1, 7)), 8, 1)) - 1) * 1048576 + (instr('0123456789ABCDEF', substr(hex(substr(r.hash_digest, 1, 7)), 9, 1)) - 1) * 65536 + (instr('0123456789ABCDEF', substr(hex(substr(r.hash_digest, 1, 7)), 10, 1)) - 1) * 4096 + (instr('0123456789ABCDEF', substr(hex(substr(r.hash_digest, 1, 7)), 11, 1)) - 1) * 256 + (instr('0123456789ABCDEF', substr(hex(substr(r.hash_digest, 1, 7)), 12, 1)) - 1) * 16 + (instr('0123456789ABCDEF', substr(hex(substr(r.hash_digest, 1, 7)), 13, 1)) - 1) * 1 AS TEXT) END,
       d.created_at
  FROM autopilot_devices d
  LEFT JOIN autopilot_registrations r ON r.tenant_id = d.tenant_id AND r.device_id = d.id;
