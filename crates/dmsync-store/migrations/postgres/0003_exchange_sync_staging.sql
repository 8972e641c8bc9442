-- The records a connector sync has read so far, written in batches while the source streams in.
-- Nothing here is visible through Graph: the sync's last transaction applies one attempt's rows
-- to eas_devices, removes the devices a full sync did not see, and empties the connector's
-- staging, so a sync that fails or dies half-way changes no device. Keyed by the job's attempt,
-- so rows an earlier, crashed attempt left are never applied; they go at the next sync's end.
CREATE TABLE eas_sync_staging (
    tenant_id           TEXT COLLATE "C" NOT NULL,
    connector_id        TEXT COLLATE "C" NOT NULL,
    job_id              TEXT COLLATE "C" NOT NULL,
    attempt             BIGINT NOT NULL,
    eas_device_id       TEXT COLLATE "C" NOT NULL,
    -- The id the device gets if the sync inserts it.
    id                  TEXT COLLATE "C" NOT NULL,
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
    device_name         TEXT COLLATE "C" NOT NULL,
    operating_system    TEXT COLLATE "C" NOT NULL,
    os_version          TEXT COLLATE "C" NOT NULL,
    manufacturer        TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, connector_id, job_id, attempt, eas_device_id)
);
