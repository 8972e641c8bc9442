-- App registrations gain what the sign-in flows need: the delegated permissions granted to
-- the app (NULL: the user's own consent decides, as before), the redirect URIs the
-- authorization endpoint may send a code to, and certificates whose keys sign client
-- assertions. Assertions already used are remembered until they expire, so none is replayed.
ALTER TABLE app_registrations ADD COLUMN delegated_permissions TEXT;
ALTER TABLE app_registrations ADD COLUMN redirect_uris TEXT NOT NULL DEFAULT '[]';

CREATE TABLE app_certificates (
    tenant_id         TEXT NOT NULL,
    client_id         TEXT NOT NULL,
    thumbprint_sha1   TEXT NOT NULL,
    thumbprint_sha256 TEXT NOT NULL,
    certificate_pem   TEXT NOT NULL,
    not_before        INTEGER NOT NULL,
    not_after         INTEGER NOT NULL,
    added_at          INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, client_id, thumbprint_sha1),
    FOREIGN KEY (tenant_id, client_id) REFERENCES app_registrations (tenant_id, client_id) ON DELETE CASCADE
);

CREATE TABLE consumed_assertions (
    tenant_id  TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, client_id, jti)
);
CREATE INDEX consumed_assertions_expiry ON consumed_assertions (tenant_id, client_id, expires_at);

-- The development app and user hold every permission dmsync serves (the app every application
-- permission), so that a newcomer's first call of any route works; tests of the 403 paths mint
-- tokens with fewer.
UPDATE app_registrations SET roles = '["DeviceManagementServiceConfig.Read.All","DeviceManagementServiceConfig.ReadWrite.All","DeviceManagementConfiguration.Read.All","DeviceManagementConfiguration.ReadWrite.All","DeviceManagementManagedDevices.Read.All","DeviceManagementManagedDevices.ReadWrite.All","DeviceManagementRBAC.Read.All","DeviceManagementRBAC.ReadWrite.All","Device.Read.All","Device.ReadWrite.All","Directory.Read.All","Directory.ReadWrite.All","Group.Read.All","Group.ReadWrite.All","Group.Create","GroupMember.Read.All","GroupMember.ReadWrite.All"]'
WHERE tenant_id = '11111111-1111-4111-8111-111111111111' AND client_id = '22222222-2222-4222-8222-222222222222';
UPDATE users SET scopes = '["DeviceManagementServiceConfig.Read.All","DeviceManagementServiceConfig.ReadWrite.All","DeviceManagementConfiguration.Read.All","DeviceManagementConfiguration.ReadWrite.All","DeviceManagementManagedDevices.Read.All","DeviceManagementManagedDevices.ReadWrite.All","DeviceManagementRBAC.Read.All","DeviceManagementRBAC.ReadWrite.All","Device.Read.All","Device.ReadWrite.All","Directory.Read.All","Directory.ReadWrite.All","Group.Read.All","Group.ReadWrite.All","Group.Create","GroupMember.Read.All","GroupMember.ReadWrite.All","Directory.AccessAsUser.All"]'
WHERE tenant_id = '11111111-1111-4111-8111-111111111111' AND object_id = '44444444-4444-4444-8444-444444444444';
