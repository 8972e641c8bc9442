-- The records a connector sync has read so far, written in batches while the source streams in.
-- Nothing here is visible through Graph: the sync's last transaction applies one attempt's rows
-- to eas_devices, removes the devices a full sync did not see, and empties the connector's
-- staging, so a sync that fails or dies half-way changes no device. Keyed by the job's attempt,
-- so rows an earlier, crashed attempt left are never applied; they go at the next sync's end.
CREATE TABLE eas_sync_staging (
    tenant_id             TEXT NOT NULL,
    connector_id          TEXT NOT NULL,
    job_id                TEXT NOT NULL,
    attempt               INTEGER NOT NULL,
    eas_device_id         TEXT NOT NULL,
    -- The id the device gets if the sync inserts it.
    id                    TEXT NOT NULL,
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
    device_name           TEXT NOT NULL,
    operating_system      TEXT NOT NULL,
    os_version            TEXT NOT NULL,
    manufacturer          TEXT NOT NULL,
    PRIMARY KEY (tenant_id, connector_id, job_id, attempt, eas_device_id)
);
