//! `deviceManagement/managedDevices` (v1.0 and beta), list and get: the Exchange ActiveSync
//! devices that Exchange connector syncs discover. dmsync manages no other kind of device.

use axum::extract::{Path, State};
use dmsync_core::exchange::{EasDevice, ExchangeAccessState, ManagedDeviceField};
use dmsync_core::permissions::Operation;
use dmsync_graph::ApiVersion;
use dmsync_graph::managed_device::{
    BETA_PROPERTIES, CONFIGURATION_MANAGER_FEATURES_BETA, ChassisType, ConfigurationManagerClientEnabledFeatures,
    ConfigurationManagerClientHealthState, ConfigurationManagerClientInformation, ConfigurationManagerClientState,
    DeviceGuardLocalSystemAuthorityCredentialGuardState,
    DeviceGuardVirtualizationBasedSecurityHardwareRequirementState, DeviceGuardVirtualizationBasedSecurityState,
    DeviceHealthAttestationState, DeviceLicensingStatus, DeviceType, HardwareInformation, JoinType, LostModeState,
    ManagedDevice, ManagedDeviceArchitecture, ManagedDeviceBeta, ManagedDeviceManagementFeatures,
    ManagedDevicePartnerReportedHealthState, ManagementState, OwnerType, V1_PROPERTIES,
};

use super::Version;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::http::list::{self, PageRequest};
use crate::http::openapi::{Answer, OperationDoc};
use crate::http::query::ODataQuery;
use crate::http::response::ODataBody;
use crate::http::routing::{BOTH, Endpoint, GraphRoute};
use crate::state::AppState;

const SET: &str = "deviceManagement/managedDevices";

/// Every property of beta's `managedDevice`: v1.0's and the beta-only ones.
const ALL_PROPERTIES: [&str; V1_PROPERTIES.len() + BETA_PROPERTIES.len()] = concat(V1_PROPERTIES, BETA_PROPERTIES);

/// `a` then `b` as one array, made at compile time: a `Collection` takes its properties as a
/// static slice, which `concat!` and `[a, b].concat()` cannot make in a constant.
const fn concat<const N: usize>(a: &[&'static str], b: &[&'static str]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < a.len() {
        out[i] = a[i];
        i += 1;
    }
    while i < N {
        out[i] = b[i - a.len()];
        i += 1;
    }
    out
}

pub fn routes() -> Vec<GraphRoute> {
    vec![
        GraphRoute::new(
            BOTH,
            SET,
            vec![Endpoint::get(
                list_managed_devices,
                OperationDoc::new("listManagedDevices", Answer::Page(device_schema)).query(list::PAGE_OPTIONS),
            )],
        ),
        GraphRoute::new(
            BOTH,
            "deviceManagement/managedDevices/{id}",
            vec![Endpoint::get(
                get_managed_device,
                OperationDoc::new("getManagedDevice", Answer::Entity(device_schema)).query(list::ENTITY_OPTIONS),
            )],
        ),
    ]
}

fn field(name: &str) -> Option<ManagedDeviceField> {
    Some(match name.to_ascii_lowercase().as_str() {
        "id" => ManagedDeviceField::Id,
        "devicename" => ManagedDeviceField::DeviceName,
        "userprincipalname" => ManagedDeviceField::UserPrincipalName,
        "emailaddress" => ManagedDeviceField::EmailAddress,
        "operatingsystem" => ManagedDeviceField::OperatingSystem,
        "osversion" => ManagedDeviceField::OsVersion,
        "model" => ManagedDeviceField::Model,
        "manufacturer" => ManagedDeviceField::Manufacturer,
        "easdeviceid" => ManagedDeviceField::EasDeviceId,
        "exchangeaccessstate" => ManagedDeviceField::ExchangeAccessState,
        "managementagent" => ManagedDeviceField::ManagementAgent,
        _ => return None,
    })
}

fn sort_value(d: &EasDevice, f: ManagedDeviceField) -> String {
    let (os, version) = d.record.operating_system();
    match f {
        ManagedDeviceField::Id => d.id.to_string(),
        ManagedDeviceField::DeviceName => d.record.device_name(),
        ManagedDeviceField::UserPrincipalName => d.record.user_principal_name.clone(),
        ManagedDeviceField::EmailAddress => d.record.email_address.clone(),
        ManagedDeviceField::OperatingSystem => os,
        ManagedDeviceField::OsVersion => version,
        ManagedDeviceField::Model => d.record.device_model.clone(),
        ManagedDeviceField::Manufacturer => d.record.manufacturer(),
        ManagedDeviceField::EasDeviceId => d.record.device_id.clone(),
        ManagedDeviceField::ExchangeAccessState => d.record.access_state.as_str().into(),
        ManagedDeviceField::ManagementAgent => "eas".into(),
    }
}

/// Exchange's `DeviceAccessStateReason` as Graph's `deviceManagementExchangeAccessStateReason`.
fn access_state_reason(d: &EasDevice) -> &'static str {
    if d.record.access_state == ExchangeAccessState::None {
        return "none";
    }
    match d.record.access_state_reason.trim().to_ascii_lowercase().as_str() {
        "" => "none",
        "global" => "exchangeGlobalRule",
        "individual" => "exchangeIndividualRule",
        "devicerule" => "exchangeDeviceRule",
        "upgrade" => "exchangeUpgrade",
        "policy" => "exchangeMailboxPolicy",
        _ => "other",
    }
}

/// A device's schema; v1.0's has none of the beta-only properties, and its
/// `configurationManagerClientEnabledFeatures` none of beta's two extra members.
fn device_schema(generator: &mut schemars::SchemaGenerator, version: ApiVersion) -> schemars::Schema {
    let reference = generator.subschema_for::<ManagedDevice>();
    if version == ApiVersion::V1 {
        for (definition, beta_only) in [
            ("ManagedDevice", BETA_PROPERTIES),
            ("ConfigurationManagerClientEnabledFeatures", CONFIGURATION_MANAGER_FEATURES_BETA),
        ] {
            if let Some(properties) = generator
                .definitions_mut()
                .get_mut(definition)
                .and_then(|d| d.get_mut("properties"))
                .and_then(|p| p.as_object_mut())
            {
                properties.retain(|name, _| !beta_only.contains(&name.as_str()));
            }
        }
    }
    reference
}

/// `deviceType` (beta) as far as Exchange's device type or OS tells the platform.
fn device_type(d: &EasDevice) -> DeviceType {
    let t = d.record.device_type.to_ascii_lowercase();
    let os = d.record.device_os.to_ascii_lowercase();
    if t.starts_with("iphone") {
        DeviceType::IPhone
    } else if t.starts_with("ipad") {
        DeviceType::IPad
    } else if t.starts_with("ipod") {
        DeviceType::IPod
    } else if t.starts_with("android") || os.starts_with("android") {
        DeviceType::Android
    } else {
        DeviceType::Unknown
    }
}

/// A managedDevice of `version`. What Exchange does not report is Graph's "unknown": the enum's
/// `unknown` member (or its zero member where it has none), `""`, `0`, `false`,
/// `0001-01-01T00:00:00Z`, empty collections and complex values with those members
/// (docs/GRAPH-COMPAT.md lists each choice).
fn to_wire(d: &EasDevice, version: ApiVersion) -> ManagedDevice {
    let (os, os_version) = d.record.operating_system();
    let first = d.record.first_sync.unwrap_or(d.enrolled_at);
    let last_sync = d.record.last_success_sync.or(d.record.when_changed);
    let beta = version == ApiVersion::Beta;
    ManagedDevice {
        id: d.id.to_string(),
        activation_lock_bypass_code: String::new(),
        android_security_patch_level: String::new(),
        azure_ad_device_id: String::new(),
        azure_ad_registered: false,
        compliance_grace_period_expiration_date_time: None.into(),
        compliance_state: "unknown".into(),
        configuration_manager_client_enabled_features: ConfigurationManagerClientEnabledFeatures {
            endpoint_protection: beta.then_some(false),
            office_apps: beta.then_some(false),
            ..Default::default()
        },
        device_action_results: Vec::new(),
        device_category_display_name: "Unknown".into(),
        device_enrollment_type: "unknown".into(),
        device_health_attestation_state: DeviceHealthAttestationState::default(),
        device_name: d.record.device_name(),
        device_registration_state: "notRegistered".into(),
        eas_activated: true,
        eas_activation_date_time: first.into(),
        eas_device_id: d.record.device_id.clone(),
        email_address: d.record.email_address.clone(),
        enrolled_date_time: first.into(),
        ethernet_mac_address: String::new(),
        exchange_access_state: d.record.access_state.as_str().into(),
        exchange_access_state_reason: access_state_reason(d).into(),
        exchange_last_successful_sync_date_time: last_sync.into(),
        free_storage_space_in_bytes: 0,
        iccid: String::new(),
        imei: String::new(),
        is_encrypted: false,
        is_supervised: false,
        jail_broken: "Unknown".into(),
        last_sync_date_time: last_sync.into(),
        managed_device_name: d.record.device_name(),
        managed_device_owner_type: "unknown".into(),
        management_agent: "eas".into(),
        management_certificate_expiration_date: None.into(),
        manufacturer: d.record.manufacturer(),
        meid: String::new(),
        model: d.record.device_model.clone(),
        notes: String::new(),
        operating_system: os,
        os_version,
        partner_reported_threat_state: ManagedDevicePartnerReportedHealthState::Unknown,
        phone_number: String::new(),
        physical_memory_in_bytes: 0,
        remote_assistance_session_error_details: String::new(),
        remote_assistance_session_url: String::new(),
        require_user_enrollment_approval: false,
        serial_number: String::new(),
        subscriber_carrier: String::new(),
        total_storage_space_in_bytes: 0,
        udid: String::new(),
        user_display_name: d.record.user_display_name.clone(),
        user_id: String::new(),
        user_principal_name: d.record.user_principal_name.clone(),
        wi_fi_mac_address: String::new(),
        beta: beta.then(|| beta_part(d)),
    }
}

fn beta_part(d: &EasDevice) -> ManagedDeviceBeta {
    ManagedDeviceBeta {
        aad_registered: false,
        autopilot_enrolled: false,
        azure_active_directory_device_id: String::new(),
        bootstrap_token_escrowed: false,
        chassis_type: ChassisType::Unknown,
        chrome_os_device_info: Vec::new(),
        configuration_manager_client_health_state: ConfigurationManagerClientHealthState {
            state: ConfigurationManagerClientState::Unknown,
            error_code: 0,
            last_sync_date_time: None.into(),
        },
        configuration_manager_client_information: ConfigurationManagerClientInformation::default(),
        device_firmware_configuration_interface_managed: false,
        device_type: device_type(d),
        enrollment_profile_name: String::new(),
        hardware_information: hardware_information(d),
        join_type: JoinType::Unknown,
        lost_mode_state: LostModeState::Disabled,
        management_features: ManagedDeviceManagementFeatures::None,
        management_state: ManagementState::Managed,
        owner_type: OwnerType::Unknown,
        prefer_mdm_over_group_policy_applied_date_time: None.into(),
        processor_architecture: ManagedDeviceArchitecture::Unknown,
        retire_after_date_time: None.into(),
        role_scope_tag_ids: vec!["0".into()],
        sku_family: String::new(),
        sku_number: 0,
        specification_version: String::new(),
        users_logged_on: Vec::new(),
        windows_active_malware_count: 0,
        windows_remediated_malware_count: 0,
    }
}

/// `hardwareInformation`: the model and manufacturer Exchange reports, the rest unknown.
fn hardware_information(d: &EasDevice) -> HardwareInformation {
    HardwareInformation {
        serial_number: String::new(),
        total_storage_space: 0,
        free_storage_space: 0,
        imei: String::new(),
        meid: String::new(),
        manufacturer: d.record.manufacturer(),
        model: d.record.device_model.clone(),
        phone_number: String::new(),
        subscriber_carrier: String::new(),
        cellular_technology: String::new(),
        wifi_mac: String::new(),
        operating_system_language: String::new(),
        is_supervised: false,
        is_encrypted: false,
        battery_serial_number: String::new(),
        battery_health_percentage: 0,
        battery_charge_cycles: 0,
        is_shared_device: false,
        shared_device_cached_users: Vec::new(),
        tpm_specification_version: String::new(),
        operating_system_edition: String::new(),
        device_full_qualified_domain_name: String::new(),
        device_guard_virtualization_based_security_hardware_requirement_state:
            DeviceGuardVirtualizationBasedSecurityHardwareRequirementState::MeetHardwareRequirements,
        device_guard_virtualization_based_security_state: DeviceGuardVirtualizationBasedSecurityState::NotConfigured,
        device_guard_local_system_authority_credential_guard_state:
            DeviceGuardLocalSystemAuthorityCredentialGuardState::NotConfigured,
        os_build_number: String::new(),
        operating_system_product_type: 0,
        ip_address_v4: String::new(),
        subnet_address: String::new(),
        esim_identifier: String::new(),
        system_management_bios_version: String::new(),
        tpm_manufacturer: String::new(),
        tpm_version: String::new(),
        wired_ipv4_addresses: Vec::new(),
        battery_level_percentage: 0.0,
        resident_users_count: 0,
        product_name: String::new(),
        device_licensing_status: DeviceLicensingStatus::Unknown,
        device_licensing_last_error_code: 0,
        device_licensing_last_error_description: String::new(),
    }
}

/// The collection as v1.0 serves it, and as beta does: the same devices, each version with its
/// own properties for `$select` and on the wire.
fn collection(version: ApiVersion) -> &'static list::Collection<EasDevice, ManagedDeviceField, ManagedDevice> {
    const fn of(
        properties: &'static [&'static str],
        wire: fn(&EasDevice) -> ManagedDevice,
    ) -> list::Collection<EasDevice, ManagedDeviceField, ManagedDevice> {
        list::Collection {
            set: SET,
            type_name: "managedDevice",
            properties,
            field,
            id: |d| d.id.into(),
            sort_value,
            wire,
        }
    }
    static V1: list::Collection<EasDevice, ManagedDeviceField, ManagedDevice> =
        of(V1_PROPERTIES, |d| to_wire(d, ApiVersion::V1));
    static BETA: list::Collection<EasDevice, ManagedDeviceField, ManagedDevice> =
        of(&ALL_PROPERTIES, |d| to_wire(d, ApiVersion::Beta));
    match version {
        ApiVersion::V1 => &V1,
        ApiVersion::Beta => &BETA,
    }
}

/// List managedDevices.
/// https://learn.microsoft.com/graph/api/intune-devices-manageddevice-list?view=graph-rest-1.0
async fn list_managed_devices(
    State(state): State<AppState>,
    caller: Caller,
    request: PageRequest,
) -> ApiResult<ODataBody> {
    let tenant = caller.authorize(Operation::ReadManagedDevices)?.tenant_id();
    let store = &state.store();
    let page = collection(request.version).page(
        &state,
        tenant,
        &request,
        async |page| store.list_managed_devices(tenant, page).await,
        async |filter| store.count_managed_devices(tenant, filter).await,
    );
    page.await
}

/// Get managedDevice.
/// https://learn.microsoft.com/graph/api/intune-devices-manageddevice-get?view=graph-rest-1.0
async fn get_managed_device(
    State(state): State<AppState>,
    caller: Caller,
    version: Version,
    query: ODataQuery,
    Path(id): Path<String>,
) -> ApiResult<ODataBody> {
    let tenant = caller.authorize(Operation::ReadManagedDevices)?.tenant_id();
    let store = state.store();
    collection(version.0).entity(&query, version.0, &id, async |id| store.managed_device(tenant, id).await).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use dmsync_core::exchange::MobileDeviceRecord;
    use dmsync_core::{ConnectorId, EasDeviceId, TenantId};
    use dmsync_graph::writer::{Select, entity_document};

    fn device() -> EasDevice {
        EasDevice {
            tenant_id: TenantId::new(),
            id: EasDeviceId::new(),
            connector_id: ConnectorId::new(),
            record: MobileDeviceRecord {
                device_id: "A".into(),
                device_type: "iPhone".into(),
                device_model: "iPhone15,2".into(),
                device_os: "iOS 17.1.2 21B101".into(),
                friendly_name: String::new(),
                user_display_name: "Kim".into(),
                user_principal_name: "kim@contoso.com".into(),
                email_address: "kim@contoso.com".into(),
                access_state: ExchangeAccessState::Allowed,
                access_state_reason: "Global".into(),
                first_sync: None,
                last_success_sync: None,
                when_changed: None,
            },
            enrolled_at: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    /// The names of a JSON object's top-level members, in the order they were written.
    fn top_level_names(json: &str) -> Vec<String> {
        struct Names;
        impl<'de> serde::de::Visitor<'de> for Names {
            type Value = Vec<String>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    names.push(name);
                }
                Ok(names)
            }
        }
        serde::Deserializer::deserialize_map(&mut serde_json::Deserializer::from_str(json), Names).unwrap()
    }

    /// Each version's device serialises exactly its `$select` list, in sorted order, so the
    /// writer never has to sort a device of a page, and the writer's bytes are serde_json's.
    #[test]
    fn each_version_writes_its_properties_in_sorted_order() {
        for version in [ApiVersion::V1, ApiVersion::Beta] {
            let wire = to_wire(&device(), version);
            let written = top_level_names(&serde_json::to_string(&wire).unwrap());
            let mut known: Vec<String> = collection(version).properties.iter().map(|p| p.to_string()).collect();
            known.sort_unstable();
            assert_eq!(written, known);
            let sorted = serde_json::to_string(&serde_json::to_value(&wire).unwrap()).unwrap();
            let doc = entity_document("c", &wire, Select::ALL, &[]).unwrap();
            assert_eq!(String::from_utf8(doc).unwrap(), format!("{{\"@odata.context\":\"c\",{}", &sorted[1..]));
        }
    }
}
