-- The device authorization grant's codes. The device code is a bearer secret, so only its
-- SHA-256 is kept. A user code is unique among the rows kept: an expired row is removed an hour
-- after it expired, when a new code is stored. tenant_id is NULL for `organizations` and
-- `common`, where the user's domain picks the tenant at sign-in; the approved_* columns name
-- the user once the code is approved.
CREATE TABLE device_codes (
    device_code_hash   TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    user_code          TEXT COLLATE "C" NOT NULL UNIQUE,
    tenant_id          TEXT COLLATE "C" REFERENCES tenants (id),
    client_id          TEXT COLLATE "C" NOT NULL,
    scope              TEXT COLLATE "C" NOT NULL,
    created_at         BIGINT NOT NULL,
    expires_at         BIGINT NOT NULL,
    last_polled_at     BIGINT,
    state              TEXT COLLATE "C" NOT NULL,
    approved_tenant_id TEXT COLLATE "C",
    approved_user_id   TEXT COLLATE "C",
    approved_user_principal_name TEXT COLLATE "C"
);
CREATE INDEX device_codes_expiry ON device_codes (expires_at);
