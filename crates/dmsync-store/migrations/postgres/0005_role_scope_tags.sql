-- Role scope tags (issue 17). Ids are Intune's small integers, per tenant; 0 is the built-in
-- Default tag every tenant has, which tenants created before this migration get here and later
-- tenants get in the transaction that creates them.

CREATE TABLE role_scope_tags (
    tenant_id    TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    id           BIGINT NOT NULL,
    display_name TEXT COLLATE "C" NOT NULL,
    description  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- The last id given out in each tenant, so that a deleted tag's id is never given again. Its
-- row is also what serialises writes to a tenant's tags (the display-name check), across
-- replicas: every write takes its row lock first.
CREATE TABLE role_scope_tag_counters (
    tenant_id TEXT COLLATE "C" PRIMARY KEY REFERENCES tenants (id),
    last_id   BIGINT NOT NULL
);

INSERT INTO role_scope_tags (tenant_id, id, display_name, description)
SELECT id, 0, 'Default', '' FROM tenants;
