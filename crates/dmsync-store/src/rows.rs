//! Row decoding shared by both engines: their schemas keep the same column names and value
//! shapes (GUID text, 100 ns ticks), so each entity is decoded once, through [`Columns`].

use time::OffsetDateTime;
use uuid::Uuid;

use dmsync_core::autopilot::{
    AutopilotDevice, AutopilotSettings, EnrollmentState, ImportStatus, ImportedDevice, SyncStatus,
};
use dmsync_core::deployment_profiles::{AssignmentTarget, DeploymentProfile, ProfileAssignment, ProfileKind};
use dmsync_core::entra::EntraDevice;
use dmsync_core::exchange::{
    ConnectorStatus, ConnectorType, EasDevice, ExchangeAccessState, ExchangeConnector, MobileDeviceRecord,
};
use dmsync_core::groups::{Group, ProcessingState};
use dmsync_core::identity::{AppCertificate, AppRegistration, SigningKey, Tenant, User};
use dmsync_core::jobs::{Job, JobState};
use dmsync_core::profile_assignment::ProfileAssignmentStatus;
use dmsync_core::scope_tags::RoleScopeTag;
use dmsync_core::{Id, IdKind, RoleScopeTagId, StoreError, StoreResult};

use crate::convert::{from_ticks, opt_from_ticks, parse_json_list, parse_uuid};
use crate::db::Row;

/// Typed column reads by name.
pub trait Columns {
    fn text(&self, column: &str) -> StoreResult<String>;
    fn opt_text(&self, column: &str) -> StoreResult<Option<String>>;
    fn int(&self, column: &str) -> StoreResult<i64>;
    fn opt_int(&self, column: &str) -> StoreResult<Option<i64>>;
    fn int32(&self, column: &str) -> StoreResult<i32>;
    fn bytes(&self, column: &str) -> StoreResult<Vec<u8>>;
    fn flag(&self, column: &str) -> StoreResult<bool>;

    fn uuid(&self, column: &str) -> StoreResult<Uuid> {
        parse_uuid(&self.text(column)?)
    }
    /// A typed id; the column's kind is the caller's to know.
    fn id<K: IdKind>(&self, column: &str) -> StoreResult<Id<K>> {
        self.uuid(column).map(Id::from_uuid)
    }
    fn time(&self, column: &str) -> StoreResult<OffsetDateTime> {
        Ok(from_ticks(self.int(column)?))
    }
    fn opt_time(&self, column: &str) -> StoreResult<Option<OffsetDateTime>> {
        Ok(opt_from_ticks(self.opt_int(column)?))
    }
}

impl Columns for Row {
    fn text(&self, column: &str) -> StoreResult<String> {
        self.get(column)
    }
    fn opt_text(&self, column: &str) -> StoreResult<Option<String>> {
        self.get(column)
    }
    fn int(&self, column: &str) -> StoreResult<i64> {
        self.get(column)
    }
    fn opt_int(&self, column: &str) -> StoreResult<Option<i64>> {
        self.get(column)
    }
    fn int32(&self, column: &str) -> StoreResult<i32> {
        self.get(column)
    }
    fn bytes(&self, column: &str) -> StoreResult<Vec<u8>> {
        self.get(column)
    }
    fn flag(&self, column: &str) -> StoreResult<bool> {
        self.get(column)
    }
}

fn parse_enum<T>(value: String, what: &str, parse: fn(&str) -> Option<T>) -> StoreResult<T> {
    parse(&value).ok_or_else(|| StoreError::Database(format!("unknown {what} '{value}'")))
}

pub fn settings_from_row(row: &impl Columns) -> StoreResult<AutopilotSettings> {
    Ok(AutopilotSettings {
        tenant_id: row.id("tenant_id")?,
        id: row.uuid("id")?,
        last_sync: row.opt_time("last_sync")?,
        last_manual_sync_trigger: row.opt_time("last_manual_sync_trigger")?,
        sync_status: parse_enum(row.text("sync_status")?, "sync status", SyncStatus::parse)?,
        cooldown_anchor: row.opt_time("cooldown_anchor")?,
    })
}

pub fn job_from_row(row: &impl Columns) -> StoreResult<Job> {
    Ok(Job {
        id: row.id("id")?,
        tenant_id: row.id("tenant_id")?,
        kind: row.text("kind")?,
        payload: serde_json::from_str(&row.text("payload")?).map_err(|e| StoreError::Database(e.to_string()))?,
        state: parse_enum(row.text("state")?, "job state", JobState::parse)?,
        attempt: row.int("attempt")?,
        run_at: row.time("run_at")?,
        created_at: row.time("created_at")?,
        lease_owner: row.opt_text("lease_owner")?,
        lease_expires_at: row.opt_time("lease_expires_at")?,
        last_error: row.opt_text("last_error")?,
    })
}

pub fn device_from_row(row: &impl Columns) -> StoreResult<AutopilotDevice> {
    Ok(AutopilotDevice {
        tenant_id: row.id("tenant_id")?,
        id: row.id("id")?,
        serial_number: row.text("serial_number")?,
        manufacturer: row.text("manufacturer")?,
        model: row.text("model")?,
        group_tag: row.text("group_tag")?,
        purchase_order_identifier: row.text("purchase_order_identifier")?,
        product_key: row.text("product_key")?,
        display_name: row.text("display_name")?,
        user_principal_name: row.text("user_principal_name")?,
        addressable_user_name: row.text("addressable_user_name")?,
        enrollment_state: parse_enum(row.text("enrollment_state")?, "enrollment state", EnrollmentState::parse)?,
        last_contacted: row.opt_time("last_contacted")?,
        device_account_upn: row.text("device_account_upn")?,
        device_account_password: row.text("device_account_password")?,
        device_friendly_name: row.text("device_friendly_name")?,
        resource_name: row.text("resource_name")?,
        deletion_requested_at: row.opt_time("deletion_requested_at")?,
        azure_ad_device_id: opt_guid(row.text("azure_ad_device_id")?)?,
        intended_profile_id: opt_id(row.opt_text("intended_profile_id")?)?,
        assigned_profile_id: opt_id(row.opt_text("assigned_profile_id")?)?,
        profile_assignment_status: parse_enum(
            row.text("profile_assignment_status")?,
            "profile assignment status",
            ProfileAssignmentStatus::parse,
        )?,
        profile_assigned_at: row.opt_time("profile_assigned_at")?,
        created_at: row.time("created_at")?,
    })
}

/// A nullable id column.
fn opt_id<K: IdKind>(text: Option<String>) -> StoreResult<Option<Id<K>>> {
    text.as_deref().map(parse_uuid).transpose().map(|id| id.map(Id::from_uuid))
}

/// A GUID column that may be empty (a page's stand-in for a column it did not read).
fn opt_guid(text: String) -> StoreResult<Option<Uuid>> {
    if text.is_empty() { Ok(None) } else { parse_uuid(&text).map(Some) }
}

pub fn entra_device_from_row(row: &impl Columns) -> StoreResult<EntraDevice> {
    Ok(EntraDevice {
        tenant_id: row.id("tenant_id")?,
        id: row.id("id")?,
        device_id: row.uuid("device_id")?,
        display_name: row.text("display_name")?,
        operating_system: row.text("operating_system")?,
        account_enabled: row.int("account_enabled")? != 0,
        trust_type: row.text("trust_type")?,
        ztdid: row.opt_text("ztdid")?.as_deref().map(parse_uuid).transpose()?.map(Id::from_uuid),
        order_id: row.text("order_id")?,
        purchase_order_id: row.text("purchase_order_id")?,
        hardware_id: row.text("hardware_id")?,
        created_at: row.time("created_at")?,
    })
}

pub fn group_from_row(row: &impl Columns) -> StoreResult<Group> {
    let processing_state = row
        .opt_text("membership_rule_processing_state")?
        .map(|state| parse_enum(state, "membership rule processing state", ProcessingState::parse))
        .transpose()?;
    Ok(Group {
        tenant_id: row.id("tenant_id")?,
        id: row.id("id")?,
        display_name: row.text("display_name")?,
        description: row.opt_text("description")?,
        mail_nickname: row.text("mail_nickname")?,
        mail_enabled: row.int("mail_enabled")? != 0,
        security_enabled: row.int("security_enabled")? != 0,
        group_types: parse_json_list(&row.text("group_types")?)?,
        membership_rule: row.opt_text("membership_rule")?,
        processing_state,
        created_at: row.time("created_at")?,
    })
}

pub fn imported_from_row(row: &impl Columns) -> StoreResult<ImportedDevice> {
    Ok(ImportedDevice {
        tenant_id: row.id("tenant_id")?,
        id: row.id("id")?,
        import_id: row.text("import_id")?,
        serial_number: row.text("serial_number")?,
        group_tag: row.text("group_tag")?,
        product_key: row.text("product_key")?,
        hardware_hash: row.bytes("hardware_hash")?,
        assigned_user_principal_name: row.text("assigned_user_principal_name")?,
        status: parse_enum(row.text("status")?, "import status", ImportStatus::parse)?,
        device_registration_id: row
            .opt_text("device_registration_id")?
            .as_deref()
            .map(parse_uuid)
            .transpose()?
            .map(Id::from_uuid),
        error_code: row.int32("error_code")?,
        error_name: row.opt_text("error_name")?,
        created_at: row.time("created_at")?,
    })
}

pub fn tenant_from_row(row: &impl Columns) -> StoreResult<Tenant> {
    Ok(Tenant { id: row.id("id")?, domain: row.text("domain")? })
}

pub fn app_from_row(row: &impl Columns) -> StoreResult<AppRegistration> {
    Ok(AppRegistration {
        tenant_id: row.id("tenant_id")?,
        client_id: row.uuid("client_id")?,
        object_id: row.uuid("object_id")?,
        display_name: row.text("display_name")?,
        secret_hash: row.text("secret_hash")?,
        roles: parse_json_list(&row.text("roles")?)?,
        delegated_permissions: row.opt_text("delegated_permissions")?.as_deref().map(parse_json_list).transpose()?,
        redirect_uris: parse_json_list(&row.text("redirect_uris")?)?,
    })
}

pub fn app_certificate_from_row(row: &impl Columns) -> StoreResult<AppCertificate> {
    Ok(AppCertificate {
        thumbprint_sha1: row.text("thumbprint_sha1")?,
        thumbprint_sha256: row.text("thumbprint_sha256")?,
        certificate_pem: row.text("certificate_pem")?,
        not_before: row.time("not_before")?,
        not_after: row.time("not_after")?,
    })
}

pub fn user_from_row(row: &impl Columns) -> StoreResult<User> {
    Ok(User {
        tenant_id: row.id("tenant_id")?,
        object_id: row.uuid("object_id")?,
        user_principal_name: row.text("user_principal_name")?,
        display_name: row.text("display_name")?,
        password_hash: row.text("password_hash")?,
        scopes: parse_json_list(&row.text("scopes")?)?,
    })
}

pub fn signing_key_from_row(row: &impl Columns) -> StoreResult<SigningKey> {
    Ok(SigningKey {
        kid: row.text("kid")?,
        private_pem: row.text("private_pem")?,
        n: row.text("n")?,
        e: row.text("e")?,
        created_at: row.time("created_at")?,
    })
}

pub fn connector_from_row(row: &impl Columns) -> StoreResult<ExchangeConnector> {
    Ok(ExchangeConnector {
        tenant_id: row.id("tenant_id")?,
        id: row.id("id")?,
        last_sync: row.opt_time("last_sync")?,
        status: parse_enum(row.text("status")?, "status", ConnectorStatus::parse)?,
        primary_smtp_address: row.text("primary_smtp_address")?,
        server_name: row.text("server_name")?,
        connector_server_name: row.text("connector_server_name")?,
        connector_type: parse_enum(row.text("connector_type")?, "type", ConnectorType::parse)?,
        version: row.text("version")?,
        exchange_alias: row.text("exchange_alias")?,
        exchange_organization: row.text("exchange_organization")?,
        source: row
            .opt_text("source")?
            .map(|s| serde_json::from_str(&s).map_err(|e| StoreError::Database(format!("stored source: {e}"))))
            .transpose()?,
        watermark: row.opt_time("watermark")?,
        last_full_sync_start: row.opt_time("last_full_sync_start")?,
        last_delta_sync_start: row.opt_time("last_delta_sync_start")?,
    })
}

pub fn eas_from_row(row: &impl Columns) -> StoreResult<EasDevice> {
    Ok(EasDevice {
        tenant_id: row.id("tenant_id")?,
        id: row.id("id")?,
        connector_id: row.id("connector_id")?,
        record: MobileDeviceRecord {
            device_id: row.text("eas_device_id")?,
            device_type: row.text("device_type")?,
            device_model: row.text("device_model")?,
            device_os: row.text("device_os")?,
            friendly_name: row.text("friendly_name")?,
            user_display_name: row.text("user_display_name")?,
            user_principal_name: row.text("user_principal_name")?,
            email_address: row.text("email_address")?,
            access_state: parse_enum(row.text("access_state")?, "access state", ExchangeAccessState::parse)?,
            access_state_reason: row.text("access_state_reason")?,
            first_sync: row.opt_time("first_sync")?,
            last_success_sync: row.opt_time("last_success_sync")?,
            when_changed: row.opt_time("when_changed")?,
        },
        enrolled_at: row.time("enrolled_at")?,
    })
}

pub fn role_scope_tag_from_row(row: &impl Columns) -> StoreResult<RoleScopeTag> {
    let id = row.int("id")?;
    let id = u32::try_from(id).map_err(|_| StoreError::Database(format!("role scope tag id {id} out of range")))?;
    Ok(RoleScopeTag {
        tenant_id: row.id("tenant_id")?,
        id: RoleScopeTagId::new(id),
        display_name: row.text("display_name")?,
        description: row.text("description")?,
    })
}

pub fn deployment_profile_from_row(row: &impl Columns) -> StoreResult<DeploymentProfile> {
    let settings = row.text("settings")?;
    Ok(DeploymentProfile {
        tenant_id: row.id("tenant_id")?,
        id: row.id("id")?,
        kind: parse_enum(row.text("kind")?, "profile kind", ProfileKind::parse)?,
        display_name: row.text("display_name")?,
        settings: serde_json::from_str(&settings)
            .map_err(|e| StoreError::Database(format!("a profile's settings do not decode: {e}")))?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

pub fn profile_assignment_from_row(row: &impl Columns) -> StoreResult<ProfileAssignment> {
    let kind = row.text("target_kind")?;
    let group = row.opt_text("group_id")?.map(|g| parse_uuid(&g).map(Id::from_uuid)).transpose()?;
    Ok(ProfileAssignment {
        tenant_id: row.id("tenant_id")?,
        profile_id: row.id("profile_id")?,
        id: row.text("id")?,
        target: AssignmentTarget::from_parts(&kind, group)
            .ok_or_else(|| StoreError::Database(format!("unknown assignment target '{kind}'")))?,
        created_at: row.time("created_at")?,
    })
}
