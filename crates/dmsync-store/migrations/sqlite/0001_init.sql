-- Timestamps are INTEGER counts of 100 ns ticks since the Unix epoch (Graph's own precision);
-- NULL means "never" and goes on the wire as 0001-01-01T00:00:00Z. Ids are lowercase GUID text.

CREATE TABLE system_state (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);

CREATE TABLE tenants (
    id         TEXT PRIMARY KEY,
    domain     TEXT NOT NULL UNIQUE COLLATE NOCASE,
    created_at INTEGER NOT NULL
);

CREATE TABLE app_registrations (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    client_id    TEXT NOT NULL,
    object_id    TEXT NOT NULL,
    display_name TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,
    roles        TEXT NOT NULL, -- JSON array of application permissions
    PRIMARY KEY (tenant_id, client_id)
);

CREATE TABLE users (
    tenant_id           TEXT NOT NULL REFERENCES tenants (id),
    object_id           TEXT NOT NULL,
    user_principal_name TEXT NOT NULL COLLATE NOCASE,
    display_name        TEXT NOT NULL,
    password_hash       TEXT NOT NULL,
    scopes              TEXT NOT NULL, -- JSON array of delegated permissions
    PRIMARY KEY (tenant_id, object_id),
    UNIQUE (tenant_id, user_principal_name)
);

CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    private_pem TEXT NOT NULL,
    n           TEXT NOT NULL,
    e           TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE autopilot_settings (
    tenant_id                 TEXT PRIMARY KEY REFERENCES tenants (id),
    id                        TEXT NOT NULL,
    last_sync                 INTEGER,
    last_manual_sync_trigger  INTEGER,
    sync_status               TEXT NOT NULL,
    cooldown_anchor           INTEGER
);

CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    kind             TEXT NOT NULL,
    payload          TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,
    run_at           INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    last_error       TEXT,
    finished_at      INTEGER
);
CREATE INDEX jobs_runnable ON jobs (state, run_at);

-- The deployment service's records. A hardware hash belongs to at most one tenant, which the
-- global unique index on its digest enforces.
CREATE TABLE autopilot_registrations (
    tenant_id                 TEXT NOT NULL REFERENCES tenants (id),
    serial_number             TEXT NOT NULL,
    device_id                 TEXT NOT NULL,
    hardware_hash             BLOB NOT NULL,
    hash_digest               BLOB NOT NULL,
    manufacturer              TEXT NOT NULL,
    model                     TEXT NOT NULL,
    group_tag                 TEXT NOT NULL,
    purchase_order_identifier TEXT NOT NULL,
    product_key               TEXT NOT NULL,
    created_at                INTEGER NOT NULL,
    updated_at                INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, serial_number)
);
CREATE UNIQUE INDEX autopilot_registrations_digest ON autopilot_registrations (hash_digest);
CREATE UNIQUE INDEX autopilot_registrations_device ON autopilot_registrations (device_id);

CREATE TABLE autopilot_devices (
    tenant_id                 TEXT NOT NULL REFERENCES tenants (id),
    id                        TEXT NOT NULL,
    serial_number             TEXT NOT NULL,
    manufacturer              TEXT NOT NULL,
    model                     TEXT NOT NULL,
    group_tag                 TEXT NOT NULL,
    purchase_order_identifier TEXT NOT NULL,
    product_key               TEXT NOT NULL,
    display_name              TEXT NOT NULL DEFAULT '',
    user_principal_name       TEXT NOT NULL DEFAULT '',
    addressable_user_name     TEXT NOT NULL DEFAULT '',
    enrollment_state          TEXT NOT NULL DEFAULT 'notContacted',
    last_contacted            INTEGER,
    created_at                INTEGER NOT NULL,
    updated_at                INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
