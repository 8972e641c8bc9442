-- Authorization codes of the authorize endpoint (issue 18): one-time, ten minutes, kept by the
-- SHA-256 of the code so that the table holds nothing redeemable.
CREATE TABLE authorization_codes (
    code_hash            TEXT PRIMARY KEY,
    tenant_id            TEXT NOT NULL REFERENCES tenants (id),
    client_id            TEXT NOT NULL,
    user_object_id       TEXT NOT NULL,
    user_principal_name  TEXT NOT NULL,
    password_fingerprint TEXT NOT NULL,
    scopes               TEXT NOT NULL, -- JSON array of delegated permissions granted
    requested_scope      TEXT NOT NULL,
    redirect_uri         TEXT NOT NULL,
    code_challenge       TEXT NOT NULL,
    nonce                TEXT,
    issued_at            INTEGER NOT NULL,
    expires_at           INTEGER NOT NULL,
    redeemed_at          INTEGER
);
CREATE INDEX authorization_codes_expiry ON authorization_codes (expires_at);
