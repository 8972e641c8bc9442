-- The Autopilot world around the sync (issue 17): groups and their members, deployment profiles
-- and their assignments, and each Autopilot device's profile assignment state. One migration so
-- that the group store, the profile store and the assignment engine agree on these tables.

-- Entra groups. group_types is a JSON array of strings (["DynamicMembership"] for a dynamic
-- group); membership_rule and its processing state are NULL for an assigned group.
CREATE TABLE groups (
    tenant_id                        TEXT NOT NULL REFERENCES tenants (id),
    id                               TEXT NOT NULL,
    display_name                     TEXT NOT NULL,
    description                      TEXT,
    mail_nickname                    TEXT NOT NULL,
    mail_enabled                     INTEGER NOT NULL,
    security_enabled                 INTEGER NOT NULL,
    group_types                      TEXT NOT NULL,
    membership_rule                  TEXT,
    membership_rule_processing_state TEXT,
    created_at                       INTEGER NOT NULL,
    updated_at                       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX groups_display_name ON groups (tenant_id, display_name);
CREATE INDEX groups_mail_nickname ON groups (tenant_id, mail_nickname);

-- A group's members by Entra object id (today only Entra devices). A dynamic group's rows are
-- written by the membership evaluator only; an assigned group's by members/$ref.
CREATE TABLE group_members (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    group_id  TEXT NOT NULL,
    member_id TEXT NOT NULL,
    added_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, group_id, member_id)
) WITHOUT ROWID;
CREATE INDEX group_members_member ON group_members (tenant_id, member_id);

-- Deployment profiles. kind is 'azureAD' or 'activeDirectory' (the @odata.type's subtype); the
-- settings that nothing queries on live in settings, a JSON object of the wire properties the
-- store keeps (current names only).
CREATE TABLE deployment_profiles (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    id           TEXT NOT NULL,
    kind         TEXT NOT NULL,
    display_name TEXT NOT NULL,
    settings     TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;

-- A profile's assignments. id is '{profileId}_{groupId}_0' for a group target; target_kind is
-- 'group', 'exclusionGroup' or 'allDevices'; group_id is NULL for allDevices.
CREATE TABLE deployment_profile_assignments (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    profile_id  TEXT NOT NULL,
    id          TEXT NOT NULL,
    target_kind TEXT NOT NULL,
    group_id    TEXT,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, profile_id, id)
) WITHOUT ROWID;
CREATE INDEX deployment_profile_assignments_group ON deployment_profile_assignments (tenant_id, group_id);

-- Each Autopilot device's assignment state, written by the assignment engine. The intended
-- profile shows at once (status 'pending'); the assigned profile and its time after the delay.
ALTER TABLE autopilot_devices ADD COLUMN intended_profile_id TEXT;
ALTER TABLE autopilot_devices ADD COLUMN intended_at INTEGER;
ALTER TABLE autopilot_devices ADD COLUMN assigned_profile_id TEXT;
ALTER TABLE autopilot_devices ADD COLUMN profile_assigned_at INTEGER;
ALTER TABLE autopilot_devices ADD COLUMN profile_assignment_status TEXT NOT NULL DEFAULT 'notAssigned';
CREATE INDEX autopilot_devices_intended_profile ON autopilot_devices (tenant_id, intended_profile_id);
