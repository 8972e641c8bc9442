-- The resource account a Surface Hub or Teams Room device is assigned (beta's
-- assignResourceAccountToDevice), shown as `resourceName`.
ALTER TABLE autopilot_devices ADD COLUMN resource_name TEXT COLLATE "C" NOT NULL DEFAULT '';
