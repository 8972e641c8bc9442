-- The Autopilot world around the sync (issue 17): groups and their members, deployment profiles
-- and their assignments, and each Autopilot device's profile assignment state. One migration so
-- that the group store, the profile store and the assignment engine agree on these tables.

-- Entra groups. group_types is a JSON array of strings (["DynamicMembership"] for a dynamic
-- group); membership_rule and its processing state are NULL for an assigned group.
CREATE TABLE groups (
    tenant_id                        TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    id                               TEXT COLLATE "C" NOT NULL,
    display_name                     TEXT COLLATE "C" NOT NULL,
    description                      TEXT COLLATE "C",
    mail_nickname                    TEXT COLLATE "C" NOT NULL,
    mail_enabled                     BIGINT NOT NULL,
    security_enabled                 BIGINT NOT NULL,
    group_types                      TEXT COLLATE "C" NOT NULL,
    membership_rule                  TEXT COLLATE "C",
    membership_rule_processing_state TEXT COLLATE "C",
    created_at                       BIGINT NOT NULL,
    updated_at                       BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX groups_display_name ON groups (tenant_id, display_name);
CREATE INDEX groups_mail_nickname ON groups (tenant_id, mail_nickname);

-- A group's members by Entra object id (today only Entra devices). A dynamic group's rows are
-- written by the membership evaluator only; an assigned group's by members/$ref.
CREATE TABLE group_members (
    tenant_id TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    group_id  TEXT COLLATE "C" NOT NULL,
    member_id TEXT COLLATE "C" NOT NULL,
    added_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, group_id, member_id)
);
CREATE INDEX group_members_member ON group_members (tenant_id, member_id);

-- Deployment profiles. kind is 'azureAD' or 'activeDirectory' (the @odata.type's subtype); the
-- settings that nothing queries on live in settings, a JSON object of the wire properties the
-- store keeps (current names only).
CREATE TABLE deployment_profiles (
    tenant_id    TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    id           TEXT COLLATE "C" NOT NULL,
    kind         TEXT COLLATE "C" NOT NULL,
    display_name TEXT COLLATE "C" NOT NULL,
    settings     TEXT COLLATE "C" NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- A profile's assignments. id is '{profileId}_{groupId}_0' for a group target; target_kind is
-- 'group', 'exclusionGroup' or 'allDevices'; group_id is NULL for allDevices.
CREATE TABLE deployment_profile_assignments (
    tenant_id   TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    profile_id  TEXT COLLATE "C" NOT NULL,
    id          TEXT COLLATE "C" NOT NULL,
    target_kind TEXT COLLATE "C" NOT NULL,
    group_id    TEXT COLLATE "C",
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, profile_id, id)
);
CREATE INDEX deployment_profile_assignments_group ON deployment_profile_assignments (tenant_id, group_id);

-- Each Autopilot device's assignment state, written by the assignment engine. The intended
-- profile shows at once (status 'pending'); the assigned profile and its time after the delay.
ALTER TABLE autopilot_devices ADD COLUMN intended_profile_id TEXT COLLATE "C";
ALTER TABLE autopilot_devices ADD COLUMN intended_at BIGINT;
ALTER TABLE autopilot_devices ADD COLUMN assigned_profile_id TEXT COLLATE "C";
ALTER TABLE autopilot_devices ADD COLUMN profile_assigned_at BIGINT;
ALTER TABLE autopilot_devices ADD COLUMN profile_assignment_status TEXT COLLATE "C" NOT NULL DEFAULT 'notAssigned';
CREATE INDEX autopilot_devices_intended_profile ON autopilot_devices (tenant_id, intended_profile_id);
