-- Exchange connectors and the Exchange ActiveSync devices their syncs discover.

CREATE TABLE exchange_connectors (
    tenant_id              TEXT NOT NULL REFERENCES tenants (id),
    id                     TEXT NOT NULL,
    last_sync              INTEGER,
    status                 TEXT NOT NULL,
    primary_smtp_address   TEXT NOT NULL,
    server_name            TEXT NOT NULL,
    connector_server_name  TEXT NOT NULL,
    connector_type         TEXT NOT NULL,
    version                TEXT NOT NULL,
    exchange_alias         TEXT NOT NULL,
    exchange_organization  TEXT NOT NULL,
    source                 TEXT,    -- JSON ConnectorSource; NULL until set through the admin API
    source_set_at          INTEGER,
    watermark              INTEGER, -- largest WhenChanged a successful sync saw
    last_full_sync_start   INTEGER,
    last_delta_sync_start  INTEGER,
    running_job_id         TEXT,    -- set while a sync of this connector is queued or running
    created_at             INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE eas_devices (
    tenant_id             TEXT NOT NULL,
    id                    TEXT NOT NULL,
    connector_id          TEXT NOT NULL,
    eas_device_id         TEXT NOT NULL,
    device_type           TEXT NOT NULL,
    device_model          TEXT NOT NULL,
    device_os             TEXT NOT NULL,
    friendly_name         TEXT NOT NULL,
    user_display_name     TEXT NOT NULL,
    user_principal_name   TEXT NOT NULL,
    email_address         TEXT NOT NULL,
    access_state          TEXT NOT NULL,
    access_state_reason   TEXT NOT NULL,
    first_sync            INTEGER,
    last_success_sync     INTEGER,
    when_changed          INTEGER,
    -- Derived once at write time so that lists can filter on them.
    device_name           TEXT NOT NULL,
    operating_system      TEXT NOT NULL,
    os_version            TEXT NOT NULL,
    manufacturer          TEXT NOT NULL,
    enrolled_at           INTEGER NOT NULL,
    -- Which sync last saw the device; a full sync removes the ones it did not see.
    seen_mark             INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (connector_id, eas_device_id)
);
