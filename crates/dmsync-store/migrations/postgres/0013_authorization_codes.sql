-- Authorization codes of the authorize endpoint (issue 18): one-time, ten minutes, kept by the
-- SHA-256 of the code so that the table holds nothing redeemable.
CREATE TABLE authorization_codes (
    code_hash            TEXT COLLATE "C" PRIMARY KEY,
    tenant_id            TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    client_id            TEXT COLLATE "C" NOT NULL,
    user_object_id       TEXT COLLATE "C" NOT NULL,
    user_principal_name  TEXT COLLATE "C" NOT NULL,
    password_fingerprint TEXT COLLATE "C" NOT NULL,
    scopes               TEXT COLLATE "C" NOT NULL, -- JSON array of delegated permissions granted
    requested_scope      TEXT COLLATE "C" NOT NULL,
    redirect_uri         TEXT COLLATE "C" NOT NULL,
    code_challenge       TEXT COLLATE "C" NOT NULL,
    nonce                TEXT COLLATE "C",
    issued_at            BIGINT NOT NULL,
    expires_at           BIGINT NOT NULL,
    redeemed_at          BIGINT
);
CREATE INDEX authorization_codes_expiry ON authorization_codes (expires_at);
