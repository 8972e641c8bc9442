-- The device authorization grant's codes. The device code is a bearer secret, so only its
-- SHA-256 is kept. A user code is unique among the rows kept: an expired row is removed an hour
-- after it expired, when a new code is stored. tenant_id is NULL for `organizations` and
-- `common`, where the user's domain picks the tenant at sign-in; the approved_* columns name
-- the user once the code is approved.
CREATE TABLE device_codes (
    device_code_hash   TEXT NOT NULL PRIMARY KEY,
    user_code          TEXT NOT NULL UNIQUE,
    tenant_id          TEXT REFERENCES tenants (id),
    client_id          TEXT NOT NULL,
    scope              TEXT NOT NULL,
    created_at         INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL,
    last_polled_at     INTEGER,
    state              TEXT NOT NULL,
    approved_tenant_id TEXT,
    approved_user_id   TEXT,
    approved_user_principal_name TEXT
) WITHOUT ROWID;
CREATE INDEX device_codes_expiry ON device_codes (expires_at);
