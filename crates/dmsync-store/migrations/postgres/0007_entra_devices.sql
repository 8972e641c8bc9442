-- Entra ID device objects (issue 17). Autopilot creates one for every device it registers, in
-- the transaction that creates the device; the Autopilot device keeps the object's deviceId as
-- its azureActiveDirectoryDeviceId. The object outlives the device (deleting an Autopilot
-- identity leaves its Entra object, as in Intune), so it is not keyed on the device.
-- physicalIds are kept as their parts: order_id is what a group tag change updates and what
-- dynamic group rules match.

ALTER TABLE autopilot_devices ADD COLUMN azure_ad_device_id TEXT COLLATE "C" NOT NULL DEFAULT '';

CREATE TABLE entra_devices (
    tenant_id         TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    id                TEXT COLLATE "C" NOT NULL,
    device_id         TEXT COLLATE "C" NOT NULL,
    display_name      TEXT COLLATE "C" NOT NULL,
    operating_system  TEXT COLLATE "C" NOT NULL,
    account_enabled   BIGINT NOT NULL,
    trust_type        TEXT COLLATE "C" NOT NULL,
    -- The Autopilot device the object was created for ([ZTDID]); NULL for none.
    ztdid             TEXT COLLATE "C",
    order_id          TEXT COLLATE "C" NOT NULL,
    purchase_order_id TEXT COLLATE "C" NOT NULL,
    hardware_id       TEXT COLLATE "C" NOT NULL,
    created_at        BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX entra_devices_device_id ON entra_devices (tenant_id, device_id);
CREATE INDEX entra_devices_ztdid ON entra_devices (tenant_id, ztdid);

-- Devices from before this migration get their deviceId and their object now, with the same
-- expressions the store uses (Dialect::guid_like and Dialect::hardware_id).
UPDATE autopilot_devices SET azure_ad_device_id =
    substr(id, 1, 15) || substr(md5(random()::text), 1, 3) || '-' || substr('89ab', 1 + floor(random() * 4)::int, 1)
    || substr(md5(random()::text), 1, 3) || '-' || substr(md5(random()::text), 1, 12);

INSERT INTO entra_devices (tenant_id, id, device_id, display_name, operating_system, account_enabled, trust_type,
    ztdid, order_id, purchase_order_id, hardware_id, created_at)
SELECT d.tenant_id,
       substr(d.id, 1, 15) || substr(md5(random()::text), 1, 3) || '-' || substr('89ab', 1 + floor(random() * 4)::int, 1)
       || substr(md5(random()::text), 1, 3) || '-' || substr(md5(random()::text), 1, 12),
       d.azure_ad_device_id, d.serial_number, 'Windows', 1, 'AzureAd', d.id, d.group_tag, d.purchase_order_identifier,
       CASE WHEN r.hash_digest IS NULL THEN ''
            ELSE 'h:' || (('x' || substr(encode(r.hash_digest, 'hex'), 1, 13))::bit(52)::bigint)::text END,
       d.created_at
  FROM autopilot_devices d
  LEFT JOIN autopilot_registrations r ON r.tenant_id = d.tenant_id AND r.device_id = d.id;
