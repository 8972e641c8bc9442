-- The PostgreSQL schema: the same tables as SQLite's migrations 0001-0004, in one step.
-- Timestamps are BIGINT counts of 100 ns ticks since the Unix epoch (Graph's own precision);
-- NULL means "never". Ids are lowercase GUID text, as on SQLite, so that both backends share
-- their row conversions and keyset cursors. Text columns use the "C" collation, so that
-- ordering and keyset comparisons are bytewise, as SQLite's BINARY collation is, whatever the
-- database's default collation; comparisons that ignore case use lower() and ILIKE.

CREATE TABLE system_state (
    key   TEXT COLLATE "C" PRIMARY KEY,
    value BIGINT NOT NULL
);

CREATE TABLE tenants (
    id         TEXT COLLATE "C" PRIMARY KEY,
    domain     TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX tenants_domain ON tenants (lower(domain));

CREATE TABLE app_registrations (
    tenant_id    TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    client_id    TEXT COLLATE "C" NOT NULL,
    object_id    TEXT COLLATE "C" NOT NULL,
    display_name TEXT COLLATE "C" NOT NULL,
    secret_hash  TEXT COLLATE "C" NOT NULL,
    roles        TEXT COLLATE "C" NOT NULL, -- JSON array of application permissions
    PRIMARY KEY (tenant_id, client_id)
);

CREATE TABLE users (
    tenant_id           TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    object_id           TEXT COLLATE "C" NOT NULL,
    user_principal_name TEXT COLLATE "C" NOT NULL,
    display_name        TEXT COLLATE "C" NOT NULL,
    password_hash       TEXT COLLATE "C" NOT NULL,
    scopes              TEXT COLLATE "C" NOT NULL, -- JSON array of delegated permissions
    PRIMARY KEY (tenant_id, object_id)
);
CREATE UNIQUE INDEX users_upn ON users (tenant_id, lower(user_principal_name));

CREATE TABLE signing_keys (
    kid         TEXT COLLATE "C" PRIMARY KEY,
    private_pem TEXT COLLATE "C" NOT NULL,
    n           TEXT COLLATE "C" NOT NULL,
    e           TEXT COLLATE "C" NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE autopilot_settings (
    tenant_id                TEXT COLLATE "C" PRIMARY KEY REFERENCES tenants (id),
    id                       TEXT COLLATE "C" NOT NULL,
    last_sync                BIGINT,
    last_manual_sync_trigger BIGINT,
    sync_status              TEXT COLLATE "C" NOT NULL,
    cooldown_anchor          BIGINT,
    reconciled_seq           BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE jobs (
    id               TEXT COLLATE "C" PRIMARY KEY,
    tenant_id        TEXT COLLATE "C" NOT NULL,
    kind             TEXT COLLATE "C" NOT NULL,
    payload          TEXT COLLATE "C" NOT NULL,
    state            TEXT COLLATE "C" NOT NULL,
    attempt          BIGINT NOT NULL DEFAULT 0,
    run_at           BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    lease_owner      TEXT COLLATE "C",
    lease_expires_at BIGINT,
    last_error       TEXT COLLATE "C",
    finished_at      BIGINT
);
CREATE INDEX jobs_runnable ON jobs (state, run_at);

-- The deployment service's records. A hardware hash belongs to at most one tenant, which the
-- global unique index on its digest enforces. Every write takes a value of the change
-- sequence (system_state 'registration_seq'); see PgStore::next_registration_seq for why the
-- values are committed in order.
CREATE TABLE autopilot_registrations (
    tenant_id                 TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    serial_number             TEXT COLLATE "C" NOT NULL,
    device_id                 TEXT COLLATE "C" NOT NULL,
    hardware_hash             BYTEA NOT NULL,
    hash_digest               BYTEA NOT NULL,
    manufacturer              TEXT COLLATE "C" NOT NULL,
    model                     TEXT COLLATE "C" NOT NULL,
    group_tag                 TEXT COLLATE "C" NOT NULL,
    purchase_order_identifier TEXT COLLATE "C" NOT NULL,
    product_key               TEXT COLLATE "C" NOT NULL,
    created_at                BIGINT NOT NULL,
    updated_at                BIGINT NOT NULL,
    change_seq                BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, serial_number)
);
CREATE UNIQUE INDEX autopilot_registrations_digest ON autopilot_registrations (hash_digest);
CREATE UNIQUE INDEX autopilot_registrations_device ON autopilot_registrations (device_id);
CREATE INDEX autopilot_registrations_changes ON autopilot_registrations (tenant_id, change_seq, device_id);

CREATE TABLE registration_tombstones (
    tenant_id  TEXT COLLATE "C" NOT NULL,
    device_id  TEXT COLLATE "C" NOT NULL,
    change_seq BIGINT NOT NULL
);
CREATE INDEX registration_tombstones_changes ON registration_tombstones (tenant_id, change_seq);

CREATE TABLE autopilot_devices (
    tenant_id                 TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    id                        TEXT COLLATE "C" NOT NULL,
    serial_number             TEXT COLLATE "C" NOT NULL,
    manufacturer              TEXT COLLATE "C" NOT NULL,
    model                     TEXT COLLATE "C" NOT NULL,
    group_tag                 TEXT COLLATE "C" NOT NULL,
    purchase_order_identifier TEXT COLLATE "C" NOT NULL,
    product_key               TEXT COLLATE "C" NOT NULL,
    display_name              TEXT COLLATE "C" NOT NULL DEFAULT '',
    user_principal_name       TEXT COLLATE "C" NOT NULL DEFAULT '',
    addressable_user_name     TEXT COLLATE "C" NOT NULL DEFAULT '',
    enrollment_state          TEXT COLLATE "C" NOT NULL DEFAULT 'notContacted',
    last_contacted            BIGINT,
    created_at                BIGINT NOT NULL,
    updated_at                BIGINT NOT NULL,
    device_account_upn        TEXT COLLATE "C" NOT NULL DEFAULT '',
    device_account_password   TEXT COLLATE "C" NOT NULL DEFAULT '',
    device_friendly_name      TEXT COLLATE "C" NOT NULL DEFAULT '',
    deletion_requested_at     BIGINT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX autopilot_devices_serial ON autopilot_devices (tenant_id, serial_number);

CREATE TABLE imported_devices (
    tenant_id                    TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    id                           TEXT COLLATE "C" NOT NULL,
    job_id                       TEXT COLLATE "C" NOT NULL,
    import_id                    TEXT COLLATE "C" NOT NULL,
    serial_number                TEXT COLLATE "C" NOT NULL,
    group_tag                    TEXT COLLATE "C" NOT NULL,
    product_key                  TEXT COLLATE "C" NOT NULL,
    hardware_hash                BYTEA NOT NULL,
    hash_digest                  BYTEA NOT NULL,
    assigned_user_principal_name TEXT COLLATE "C" NOT NULL,
    status                       TEXT COLLATE "C" NOT NULL,
    -- The id the device gets if the import succeeds; shown as deviceRegistrationId only then.
    pending_device_id            TEXT COLLATE "C" NOT NULL,
    device_registration_id       TEXT COLLATE "C",
    error_code                   INTEGER NOT NULL DEFAULT 0,
    error_name                   TEXT COLLATE "C",
    created_at                   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX imported_devices_job ON imported_devices (job_id);

CREATE TABLE exchange_connectors (
    tenant_id             TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    id                    TEXT COLLATE "C" NOT NULL,
    last_sync             BIGINT,
    status                TEXT COLLATE "C" NOT NULL,
    primary_smtp_address  TEXT COLLATE "C" NOT NULL,
    server_name           TEXT COLLATE "C" NOT NULL,
    connector_server_name TEXT COLLATE "C" NOT NULL,
    connector_type        TEXT COLLATE "C" NOT NULL,
    version               TEXT COLLATE "C" NOT NULL,
    exchange_alias        TEXT COLLATE "C" NOT NULL,
    exchange_organization TEXT COLLATE "C" NOT NULL,
    source                TEXT COLLATE "C", -- JSON ConnectorSource; NULL until set through the admin API
    source_set_at         BIGINT,
    watermark             BIGINT,           -- largest WhenChanged a successful sync saw
    last_full_sync_start  BIGINT,
    last_delta_sync_start BIGINT,
    running_job_id        TEXT COLLATE "C", -- set while a sync of this connector is queued or running
    created_at            BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE eas_devices (
    tenant_id           TEXT COLLATE "C" NOT NULL,
    id                  TEXT COLLATE "C" NOT NULL,
    connector_id        TEXT COLLATE "C" NOT NULL,
    eas_device_id       TEXT COLLATE "C" NOT NULL,
    device_type         TEXT COLLATE "C" NOT NULL,
    device_model        TEXT COLLATE "C" NOT NULL,
    device_os           TEXT COLLATE "C" NOT NULL,
    friendly_name       TEXT COLLATE "C" NOT NULL,
    user_display_name   TEXT COLLATE "C" NOT NULL,
    user_principal_name TEXT COLLATE "C" NOT NULL,
    email_address       TEXT COLLATE "C" NOT NULL,
    access_state        TEXT COLLATE "C" NOT NULL,
    access_state_reason TEXT COLLATE "C" NOT NULL,
    first_sync          BIGINT,
    last_success_sync   BIGINT,
    when_changed        BIGINT,
    -- Derived once at write time so that lists can filter on them.
    device_name         TEXT COLLATE "C" NOT NULL,
    operating_system    TEXT COLLATE "C" NOT NULL,
    os_version          TEXT COLLATE "C" NOT NULL,
    manufacturer        TEXT COLLATE "C" NOT NULL,
    enrolled_at         BIGINT NOT NULL,
    -- Which sync last saw the device; a full sync removes the ones it did not see.
    seen_mark           BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (connector_id, eas_device_id)
);
