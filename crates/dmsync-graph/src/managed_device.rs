//! `managedDevice`, v1.0 and beta, with its enums and complex types. dmsync serves it for the
//! Exchange ActiveSync devices that connectors discover; every property Graph documents is on
//! the wire, and what dmsync has no data for carries Graph's value for "unknown".

use serde::{Deserialize, Serialize};

use crate::GraphDateTime;

/// A Graph enum whose members are its camelCase variant names.
macro_rules! graph_enum {
    ($(#[$doc:meta])* $name:ident { $($member:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
        #[serde(rename_all = "camelCase")]
        pub enum $name {
            $($member),+
        }
    };
}

graph_enum!(
    /// `managedDevicePartnerReportedHealthState`.
    ManagedDevicePartnerReportedHealthState {
        Unknown, Activated, Deactivated, Secured, LowSeverity, MediumSeverity, HighSeverity, Unresponsive,
        Compromised, Misconfigured,
    }
);
graph_enum!(
    /// `actionState`, of a `deviceActionResult`.
    ActionState { None, Pending, Canceled, Active, Done, Failed, NotSupported }
);
graph_enum!(
    /// `ownerType` (beta).
    OwnerType { Unknown, Company, Personal }
);
graph_enum!(
    /// `managementState` (beta). It has no `unknown` member.
    ManagementState {
        Managed, RetirePending, RetireFailed, WipePending, WipeFailed, Unhealthy, DeletePending, RetireIssued,
        WipeIssued, WipeCanceled, RetireCanceled, Discovered,
    }
);
graph_enum!(
    /// `chassisType` (beta).
    ChassisType {
        Unknown, Desktop, Laptop, WorksWorkstation, EnterpriseServer, Phone, Tablet, MobileOther, MobileUnknown,
    }
);
graph_enum!(
    /// `lostModeState` (beta).
    LostModeState { Disabled, Enabled }
);
graph_enum!(
    /// `managedDeviceManagementFeatures` (beta).
    ManagedDeviceManagementFeatures { None, MicrosoftManagedDesktop }
);
graph_enum!(
    /// `configurationManagerClientState` (beta).
    ConfigurationManagerClientState { Unknown, Installed, Healthy, InstallFailed, UpdateFailed, CommunicationError }
);
graph_enum!(
    /// `deviceLicensingStatus` (beta).
    DeviceLicensingStatus {
        LicenseRefreshStarted, LicenseRefreshPending, DeviceIsNotAzureActiveDirectoryJoined,
        VerifyingMicrosoftDeviceIdentity, DeviceIdentityVerificationFailed, VerifyingMicrosoftAccountIdentity,
        MicrosoftAccountVerificationFailed, AcquiringDeviceLicense, RefreshingDeviceLicense,
        DeviceLicenseRefreshSucceed, DeviceLicenseRefreshFailed, RemovingDeviceLicense, DeviceLicenseRemoveSucceed,
        DeviceLicenseRemoveFailed, UnknownFutureValue, Unknown,
    }
);
graph_enum!(
    /// `deviceGuardVirtualizationBasedSecurityState` (beta).
    DeviceGuardVirtualizationBasedSecurityState {
        Running, RebootRequired, Require64BitArchitecture, NotLicensed, NotConfigured,
        DoesNotMeetHardwareRequirements, Other,
    }
);
graph_enum!(
    /// `deviceGuardLocalSystemAuthorityCredentialGuardState` (beta).
    DeviceGuardLocalSystemAuthorityCredentialGuardState {
        Running, RebootRequired, NotLicensed, NotConfigured, VirtualizationBasedSecurityNotRunning,
    }
);

/// `deviceGuardVirtualizationBasedSecurityHardwareRequirementState` (beta), a flags enum whose
/// zero member says that no requirement is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum DeviceGuardVirtualizationBasedSecurityHardwareRequirementState {
    MeetHardwareRequirements,
    SecureBootRequired,
    DmaProtectionRequired,
    #[serde(rename = "hyperVNotSupportedForGuestVM")]
    HyperVNotSupportedForGuestVm,
    HyperVNotAvailable,
}

/// `joinType` (beta). The `AD` in its members is upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum JoinType {
    #[serde(rename = "unknown")]
    Unknown,
    #[serde(rename = "azureADJoined")]
    AzureAdJoined,
    #[serde(rename = "azureADRegistered")]
    AzureAdRegistered,
    #[serde(rename = "hybridAzureADJoined")]
    HybridAzureAdJoined,
}

/// `managedDeviceArchitecture` (beta). `arM64` is Graph's own spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum ManagedDeviceArchitecture {
    Unknown,
    X86,
    X64,
    Arm,
    #[serde(rename = "arM64")]
    ArM64,
}

/// `deviceType` (beta): the platform. Its members keep Graph's mixed casing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum DeviceType {
    Desktop,
    #[serde(rename = "windowsRT")]
    WindowsRt,
    #[serde(rename = "winMO6")]
    WinMo6,
    Nokia,
    WindowsPhone,
    Mac,
    #[serde(rename = "winCE")]
    WinCe,
    WinEmbedded,
    #[serde(rename = "iPhone")]
    IPhone,
    #[serde(rename = "iPad")]
    IPad,
    #[serde(rename = "iPod")]
    IPod,
    Android,
    #[serde(rename = "iSocConsumer")]
    ISocConsumer,
    Unix,
    #[serde(rename = "macMDM")]
    MacMdm,
    HoloLens,
    SurfaceHub,
    AndroidForWork,
    AndroidEnterprise,
    Windows10x,
    #[serde(rename = "androidnGMS")]
    AndroidnGms,
    #[serde(rename = "chromeOS")]
    ChromeOs,
    Linux,
    Blackberry,
    Palm,
    Unknown,
    #[serde(rename = "cloudPC")]
    CloudPc,
}

/// `deviceActionResult`: a remote action's state. dmsync runs no remote actions, so the
/// collection is always empty; the type is here for the schema.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct DeviceActionResult {
    pub action_name: String,
    pub action_state: ActionState,
    pub start_date_time: GraphDateTime,
    pub last_updated_date_time: GraphDateTime,
}

/// `configurationManagerClientEnabledFeatures`. beta has two members more than v1.0; they are
/// `None` in v1.0 responses and left out.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationManagerClientEnabledFeatures {
    pub inventory: bool,
    pub modern_apps: bool,
    pub resource_access: bool,
    pub device_configuration: bool,
    pub compliance_policy: bool,
    pub windows_update_for_business: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_protection: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub office_apps: Option<bool>,
}

/// The members of `configurationManagerClientEnabledFeatures` that only beta has.
pub const CONFIGURATION_MANAGER_FEATURES_BETA: &[&str] = &["endpointProtection", "officeApps"];

/// `deviceHealthAttestationState`. `lastUpdateDateTime` is a string in Graph's schema, not a
/// timestamp, and `dataExcutionPolicy` is Graph's own spelling.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct DeviceHealthAttestationState {
    pub last_update_date_time: String,
    pub content_namespace_url: String,
    pub device_health_attestation_status: String,
    pub content_version: String,
    pub issued_date_time: GraphDateTime,
    pub attestation_identity_key: String,
    pub reset_count: i64,
    pub restart_count: i64,
    pub data_excution_policy: String,
    pub bit_locker_status: String,
    pub boot_manager_version: String,
    pub code_integrity_check_version: String,
    pub secure_boot: String,
    pub boot_debugging: String,
    pub operating_system_kernel_debugging: String,
    pub code_integrity: String,
    pub test_signing: String,
    pub safe_mode: String,
    #[serde(rename = "windowsPE")]
    pub windows_pe: String,
    pub early_launch_anti_malware_driver_protection: String,
    pub virtual_secure_mode: String,
    pub pcr_hash_algorithm: String,
    pub boot_app_security_version: String,
    pub boot_manager_security_version: String,
    pub tpm_version: String,
    pub pcr0: String,
    pub secure_boot_configuration_policy_finger_print: String,
    pub code_integrity_policy: String,
    pub boot_revision_list_info: String,
    pub operating_system_rev_list_info: String,
    pub health_status_mismatch_info: String,
    pub health_attestation_supported_status: String,
}

/// `sharedAppleDeviceUser` (beta), a user cached on a shared iPad.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct SharedAppleDeviceUser {
    pub user_principal_name: String,
    pub data_to_sync: bool,
    pub data_quota: i64,
    pub data_used: i64,
}

/// `hardwareInformation` (beta).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct HardwareInformation {
    pub serial_number: String,
    pub total_storage_space: i64,
    pub free_storage_space: i64,
    pub imei: String,
    pub meid: String,
    pub manufacturer: String,
    pub model: String,
    pub phone_number: String,
    pub subscriber_carrier: String,
    pub cellular_technology: String,
    pub wifi_mac: String,
    pub operating_system_language: String,
    pub is_supervised: bool,
    pub is_encrypted: bool,
    pub battery_serial_number: String,
    pub battery_health_percentage: i32,
    pub battery_charge_cycles: i32,
    pub is_shared_device: bool,
    pub shared_device_cached_users: Vec<SharedAppleDeviceUser>,
    pub tpm_specification_version: String,
    pub operating_system_edition: String,
    pub device_full_qualified_domain_name: String,
    pub device_guard_virtualization_based_security_hardware_requirement_state:
        DeviceGuardVirtualizationBasedSecurityHardwareRequirementState,
    pub device_guard_virtualization_based_security_state: DeviceGuardVirtualizationBasedSecurityState,
    pub device_guard_local_system_authority_credential_guard_state: DeviceGuardLocalSystemAuthorityCredentialGuardState,
    pub os_build_number: String,
    pub operating_system_product_type: i32,
    pub ip_address_v4: String,
    pub subnet_address: String,
    pub esim_identifier: String,
    #[serde(rename = "systemManagementBIOSVersion")]
    pub system_management_bios_version: String,
    pub tpm_manufacturer: String,
    pub tpm_version: String,
    #[serde(rename = "wiredIPv4Addresses")]
    pub wired_ipv4_addresses: Vec<String>,
    pub battery_level_percentage: f64,
    pub resident_users_count: i32,
    pub product_name: String,
    pub device_licensing_status: DeviceLicensingStatus,
    pub device_licensing_last_error_code: i32,
    pub device_licensing_last_error_description: String,
}

/// `loggedOnUser` (beta).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct LoggedOnUser {
    pub user_id: String,
    pub last_log_on_date_time: GraphDateTime,
}

/// `configurationManagerClientHealthState` (beta).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationManagerClientHealthState {
    pub state: ConfigurationManagerClientState,
    pub error_code: i32,
    pub last_sync_date_time: GraphDateTime,
}

/// `configurationManagerClientInformation` (beta).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationManagerClientInformation {
    pub client_identifier: String,
    pub is_blocked: bool,
    pub client_version: String,
}

/// `chromeOSDeviceProperty` (beta).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ChromeOsDeviceProperty {
    pub name: String,
    pub value: String,
    pub value_type: String,
    pub updatable: bool,
}

/// `managedDevice`. The beta-only properties are `Option` and left out of v1.0 responses. It
/// serialises by hand (below) so that the properties come in the order responses carry them,
/// as `WindowsAutopilotDeviceIdentity` does.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ManagedDevice {
    pub activation_lock_bypass_code: String,
    pub android_security_patch_level: String,
    #[serde(rename = "azureADDeviceId")]
    pub azure_ad_device_id: String,
    #[serde(rename = "azureADRegistered")]
    pub azure_ad_registered: bool,
    pub compliance_grace_period_expiration_date_time: GraphDateTime,
    pub compliance_state: String,
    pub configuration_manager_client_enabled_features: ConfigurationManagerClientEnabledFeatures,
    pub device_action_results: Vec<DeviceActionResult>,
    pub device_category_display_name: String,
    pub device_enrollment_type: String,
    pub device_health_attestation_state: DeviceHealthAttestationState,
    pub device_name: String,
    pub device_registration_state: String,
    pub eas_activated: bool,
    pub eas_activation_date_time: GraphDateTime,
    pub eas_device_id: String,
    pub email_address: String,
    pub enrolled_date_time: GraphDateTime,
    pub ethernet_mac_address: String,
    pub exchange_access_state: String,
    pub exchange_access_state_reason: String,
    pub exchange_last_successful_sync_date_time: GraphDateTime,
    pub free_storage_space_in_bytes: i64,
    pub iccid: String,
    pub id: String,
    pub imei: String,
    pub is_encrypted: bool,
    pub is_supervised: bool,
    pub jail_broken: String,
    pub last_sync_date_time: GraphDateTime,
    pub managed_device_name: String,
    pub managed_device_owner_type: String,
    pub management_agent: String,
    pub management_certificate_expiration_date: GraphDateTime,
    pub manufacturer: String,
    pub meid: String,
    pub model: String,
    pub notes: String,
    pub operating_system: String,
    pub os_version: String,
    pub partner_reported_threat_state: ManagedDevicePartnerReportedHealthState,
    pub phone_number: String,
    pub physical_memory_in_bytes: i64,
    pub remote_assistance_session_error_details: String,
    pub remote_assistance_session_url: String,
    pub require_user_enrollment_approval: bool,
    pub serial_number: String,
    pub subscriber_carrier: String,
    pub total_storage_space_in_bytes: i64,
    pub udid: String,
    pub user_display_name: String,
    pub user_id: String,
    pub user_principal_name: String,
    pub wi_fi_mac_address: String,
    #[serde(flatten)]
    pub beta: Option<ManagedDeviceBeta>,
}

/// The properties in byte order of their names, the beta-only ones in their places.
impl Serialize for ManagedDevice {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let beta = self.beta.as_ref();
        let len = if beta.is_some() { V1_PROPERTIES.len() + BETA_PROPERTIES.len() } else { V1_PROPERTIES.len() };
        let mut out = serializer.serialize_struct("ManagedDevice", len)?;
        if let Some(b) = beta {
            out.serialize_field("aadRegistered", &b.aad_registered)?;
        }
        out.serialize_field("activationLockBypassCode", &self.activation_lock_bypass_code)?;
        out.serialize_field("androidSecurityPatchLevel", &self.android_security_patch_level)?;
        if let Some(b) = beta {
            out.serialize_field("autopilotEnrolled", &b.autopilot_enrolled)?;
        }
        out.serialize_field("azureADDeviceId", &self.azure_ad_device_id)?;
        out.serialize_field("azureADRegistered", &self.azure_ad_registered)?;
        if let Some(b) = beta {
            out.serialize_field("azureActiveDirectoryDeviceId", &b.azure_active_directory_device_id)?;
            out.serialize_field("bootstrapTokenEscrowed", &b.bootstrap_token_escrowed)?;
            out.serialize_field("chassisType", &b.chassis_type)?;
            out.serialize_field("chromeOSDeviceInfo", &b.chrome_os_device_info)?;
        }
        out.serialize_field(
            "complianceGracePeriodExpirationDateTime",
            &self.compliance_grace_period_expiration_date_time,
        )?;
        out.serialize_field("complianceState", &self.compliance_state)?;
        out.serialize_field(
            "configurationManagerClientEnabledFeatures",
            &self.configuration_manager_client_enabled_features,
        )?;
        if let Some(b) = beta {
            out.serialize_field("configurationManagerClientHealthState", &b.configuration_manager_client_health_state)?;
            out.serialize_field("configurationManagerClientInformation", &b.configuration_manager_client_information)?;
        }
        out.serialize_field("deviceActionResults", &self.device_action_results)?;
        out.serialize_field("deviceCategoryDisplayName", &self.device_category_display_name)?;
        out.serialize_field("deviceEnrollmentType", &self.device_enrollment_type)?;
        if let Some(b) = beta {
            out.serialize_field(
                "deviceFirmwareConfigurationInterfaceManaged",
                &b.device_firmware_configuration_interface_managed,
            )?;
        }
        out.serialize_field("deviceHealthAttestationState", &self.device_health_attestation_state)?;
        out.serialize_field("deviceName", &self.device_name)?;
        out.serialize_field("deviceRegistrationState", &self.device_registration_state)?;
        if let Some(b) = beta {
            out.serialize_field("deviceType", &b.device_type)?;
        }
        out.serialize_field("easActivated", &self.eas_activated)?;
        out.serialize_field("easActivationDateTime", &self.eas_activation_date_time)?;
        out.serialize_field("easDeviceId", &self.eas_device_id)?;
        out.serialize_field("emailAddress", &self.email_address)?;
        out.serialize_field("enrolledDateTime", &self.enrolled_date_time)?;
        if let Some(b) = beta {
            out.serialize_field("enrollmentProfileName", &b.enrollment_profile_name)?;
        }
        out.serialize_field("ethernetMacAddress", &self.ethernet_mac_address)?;
        out.serialize_field("exchangeAccessState", &self.exchange_access_state)?;
        out.serialize_field("exchangeAccessStateReason", &self.exchange_access_state_reason)?;
        out.serialize_field("exchangeLastSuccessfulSyncDateTime", &self.exchange_last_successful_sync_date_time)?;
        out.serialize_field("freeStorageSpaceInBytes", &self.free_storage_space_in_bytes)?;
        if let Some(b) = beta {
            out.serialize_field("hardwareInformation", &b.hardware_information)?;
        }
        out.serialize_field("iccid", &self.iccid)?;
        out.serialize_field("id", &self.id)?;
        out.serialize_field("imei", &self.imei)?;
        out.serialize_field("isEncrypted", &self.is_encrypted)?;
        out.serialize_field("isSupervised", &self.is_supervised)?;
        out.serialize_field("jailBroken", &self.jail_broken)?;
        if let Some(b) = beta {
            out.serialize_field("joinType", &b.join_type)?;
        }
        out.serialize_field("lastSyncDateTime", &self.last_sync_date_time)?;
        if let Some(b) = beta {
            out.serialize_field("lostModeState", &b.lost_mode_state)?;
        }
        out.serialize_field("managedDeviceName", &self.managed_device_name)?;
        out.serialize_field("managedDeviceOwnerType", &self.managed_device_owner_type)?;
        out.serialize_field("managementAgent", &self.management_agent)?;
        out.serialize_field("managementCertificateExpirationDate", &self.management_certificate_expiration_date)?;
        if let Some(b) = beta {
            out.serialize_field("managementFeatures", &b.management_features)?;
            out.serialize_field("managementState", &b.management_state)?;
        }
        out.serialize_field("manufacturer", &self.manufacturer)?;
        out.serialize_field("meid", &self.meid)?;
        out.serialize_field("model", &self.model)?;
        out.serialize_field("notes", &self.notes)?;
        out.serialize_field("operatingSystem", &self.operating_system)?;
        out.serialize_field("osVersion", &self.os_version)?;
        if let Some(b) = beta {
            out.serialize_field("ownerType", &b.owner_type)?;
        }
        out.serialize_field("partnerReportedThreatState", &self.partner_reported_threat_state)?;
        out.serialize_field("phoneNumber", &self.phone_number)?;
        out.serialize_field("physicalMemoryInBytes", &self.physical_memory_in_bytes)?;
        if let Some(b) = beta {
            out.serialize_field(
                "preferMdmOverGroupPolicyAppliedDateTime",
                &b.prefer_mdm_over_group_policy_applied_date_time,
            )?;
            out.serialize_field("processorArchitecture", &b.processor_architecture)?;
        }
        out.serialize_field("remoteAssistanceSessionErrorDetails", &self.remote_assistance_session_error_details)?;
        out.serialize_field("remoteAssistanceSessionUrl", &self.remote_assistance_session_url)?;
        out.serialize_field("requireUserEnrollmentApproval", &self.require_user_enrollment_approval)?;
        if let Some(b) = beta {
            out.serialize_field("retireAfterDateTime", &b.retire_after_date_time)?;
            out.serialize_field("roleScopeTagIds", &b.role_scope_tag_ids)?;
        }
        out.serialize_field("serialNumber", &self.serial_number)?;
        if let Some(b) = beta {
            out.serialize_field("skuFamily", &b.sku_family)?;
            out.serialize_field("skuNumber", &b.sku_number)?;
            out.serialize_field("specificationVersion", &b.specification_version)?;
        }
        out.serialize_field("subscriberCarrier", &self.subscriber_carrier)?;
        out.serialize_field("totalStorageSpaceInBytes", &self.total_storage_space_in_bytes)?;
        out.serialize_field("udid", &self.udid)?;
        out.serialize_field("userDisplayName", &self.user_display_name)?;
        out.serialize_field("userId", &self.user_id)?;
        out.serialize_field("userPrincipalName", &self.user_principal_name)?;
        if let Some(b) = beta {
            out.serialize_field("usersLoggedOn", &b.users_logged_on)?;
        }
        out.serialize_field("wiFiMacAddress", &self.wi_fi_mac_address)?;
        if let Some(b) = beta {
            out.serialize_field("windowsActiveMalwareCount", &b.windows_active_malware_count)?;
            out.serialize_field("windowsRemediatedMalwareCount", &b.windows_remediated_malware_count)?;
        }
        out.end()
    }
}

/// The properties of `managedDevice` that only `/beta` has.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ManagedDeviceBeta {
    pub aad_registered: bool,
    pub autopilot_enrolled: bool,
    pub azure_active_directory_device_id: String,
    pub bootstrap_token_escrowed: bool,
    pub chassis_type: ChassisType,
    #[serde(rename = "chromeOSDeviceInfo")]
    pub chrome_os_device_info: Vec<ChromeOsDeviceProperty>,
    pub configuration_manager_client_health_state: ConfigurationManagerClientHealthState,
    pub configuration_manager_client_information: ConfigurationManagerClientInformation,
    pub device_firmware_configuration_interface_managed: bool,
    pub device_type: DeviceType,
    pub enrollment_profile_name: String,
    pub hardware_information: HardwareInformation,
    pub join_type: JoinType,
    pub lost_mode_state: LostModeState,
    pub management_features: ManagedDeviceManagementFeatures,
    pub management_state: ManagementState,
    pub owner_type: OwnerType,
    pub prefer_mdm_over_group_policy_applied_date_time: GraphDateTime,
    pub processor_architecture: ManagedDeviceArchitecture,
    pub retire_after_date_time: GraphDateTime,
    pub role_scope_tag_ids: Vec<String>,
    pub sku_family: String,
    pub sku_number: i32,
    pub specification_version: String,
    pub users_logged_on: Vec<LoggedOnUser>,
    pub windows_active_malware_count: i32,
    pub windows_remediated_malware_count: i32,
}

/// The properties of v1.0's `managedDevice`, as `$select` names them, in the docs' order.
pub const V1_PROPERTIES: &[&str] = &[
    "id",
    "userId",
    "deviceName",
    "managedDeviceOwnerType",
    "deviceActionResults",
    "enrolledDateTime",
    "lastSyncDateTime",
    "operatingSystem",
    "complianceState",
    "jailBroken",
    "managementAgent",
    "osVersion",
    "easActivated",
    "easDeviceId",
    "easActivationDateTime",
    "azureADRegistered",
    "deviceEnrollmentType",
    "activationLockBypassCode",
    "emailAddress",
    "azureADDeviceId",
    "deviceRegistrationState",
    "deviceCategoryDisplayName",
    "isSupervised",
    "exchangeLastSuccessfulSyncDateTime",
    "exchangeAccessState",
    "exchangeAccessStateReason",
    "remoteAssistanceSessionUrl",
    "remoteAssistanceSessionErrorDetails",
    "isEncrypted",
    "userPrincipalName",
    "model",
    "manufacturer",
    "imei",
    "complianceGracePeriodExpirationDateTime",
    "serialNumber",
    "phoneNumber",
    "androidSecurityPatchLevel",
    "userDisplayName",
    "configurationManagerClientEnabledFeatures",
    "wiFiMacAddress",
    "deviceHealthAttestationState",
    "subscriberCarrier",
    "meid",
    "totalStorageSpaceInBytes",
    "freeStorageSpaceInBytes",
    "managedDeviceName",
    "partnerReportedThreatState",
    "requireUserEnrollmentApproval",
    "managementCertificateExpirationDate",
    "iccid",
    "udid",
    "notes",
    "ethernetMacAddress",
    "physicalMemoryInBytes",
];

/// The properties only beta's `managedDevice` has, in the docs' order.
pub const BETA_PROPERTIES: &[&str] = &[
    "hardwareInformation",
    "ownerType",
    "managementState",
    "chassisType",
    "deviceType",
    "aadRegistered",
    "lostModeState",
    "azureActiveDirectoryDeviceId",
    "retireAfterDateTime",
    "usersLoggedOn",
    "preferMdmOverGroupPolicyAppliedDateTime",
    "autopilotEnrolled",
    "roleScopeTagIds",
    "windowsActiveMalwareCount",
    "windowsRemediatedMalwareCount",
    "configurationManagerClientHealthState",
    "configurationManagerClientInformation",
    "processorArchitecture",
    "specificationVersion",
    "joinType",
    "skuFamily",
    "skuNumber",
    "managementFeatures",
    "chromeOSDeviceInfo",
    "enrollmentProfileName",
    "bootstrapTokenEscrowed",
    "deviceFirmwareConfigurationInterfaceManaged",
];
