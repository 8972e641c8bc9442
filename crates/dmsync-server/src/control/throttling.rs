//! Throttling as Intune documents it (issue 19 §1): per family of Intune endpoints, a bucket of
//! writes and a bucket of requests of any kind, each per tenant and per application within the
//! tenant. A request takes a token from each bucket that applies to it, or is refused with
//! Graph's 429 and a `Retry-After` until the empty bucket refills.
//!
//! A bucket holds its limit at the start of a window (20 seconds in the documented limits),
//! which begins at the first request after the previous window ended. A bucket that refilled
//! continuously would let a test's own running time leak tokens; a window that refills at once
//! is what "N requests per 20 seconds" says, and keeps every count exact. Time is the Clock's,
//! so advancing it refills the buckets.
//!
//! The buckets live in memory on a single-node server (SQLite), and in the database where
//! replicas share it (PostgreSQL), taken in one round trip per request.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::{Arc, Mutex, RwLock};

use axum::http::Method;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use dmsync_core::TenantId;
use dmsync_core::store::{ThrottleBucket, ThrottleStore};

use crate::control::RequestIdentity;
use crate::error::ApiError;

/// The largest limit a file or the admin API may set: far above any documented one, small
/// enough that no arithmetic on it overflows.
pub const MAX_LIMIT: u32 = 10_000_000;
/// The longest window a file or the admin API may set.
pub const MAX_WINDOW_SECONDS: u32 = 86_400;
/// Tenants or applications with limits of their own, at most, in one document.
pub const MAX_OVERRIDES: usize = 10_000;
/// The largest limits file `--throttling FILE` reads.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Longest application id accepted as an override's key (an id is a GUID).
const MAX_APP_ID_CHARS: usize = 128;
/// In-memory buckets kept before the ones whose window ended are dropped.
const PRUNE_ABOVE: usize = 10_000;

/// The families of Intune endpoints Graph's "Intune service limits" name, as far as dmsync
/// emulates them. Entra's directory (groups, `/devices`, users) is not Intune and is not
/// throttled here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Family {
    /// Enrollment and device enrollment: Autopilot settings and sync, device identities,
    /// imports, deployment profiles, and the Exchange connector.
    Enrollment,
    /// Devices: `deviceManagement/managedDevices`.
    Devices,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::Enrollment, Family::Devices];

    fn name(self) -> &'static str {
        match self {
            Family::Enrollment => "enrollment",
            Family::Devices => "devices",
        }
    }

    /// The family a Graph path belongs to: `/{version}/deviceManagement/{collection}…`, the
    /// collection's name compared as Graph compares segments (without regard to case).
    pub fn of_path(path: &str) -> Option<Family> {
        let mut segments = path.trim_start_matches('/').split('/');
        let version = segments.next()?;
        if !(version.eq_ignore_ascii_case("beta") || version.eq_ignore_ascii_case("v1.0")) {
            return None;
        }
        if !segments.next()?.eq_ignore_ascii_case("deviceManagement") {
            return None;
        }
        let collection = segments.next()?;
        let collection = collection.split('(').next().unwrap_or(collection);
        const ENROLLMENT: [&str; 6] = [
            "windowsAutopilotSettings",
            "windowsAutopilotDeviceIdentities",
            "importedWindowsAutopilotDeviceIdentities",
            "windowsAutopilotDeploymentProfiles",
            "exchangeConnectors",
            "deviceEnrollmentConfigurations",
        ];
        if ENROLLMENT.iter().any(|name| collection.eq_ignore_ascii_case(name)) {
            Some(Family::Enrollment)
        } else if collection.eq_ignore_ascii_case("managedDevices") {
            Some(Family::Devices)
        } else {
            None
        }
    }
}

/// One family's limits: writes and requests of any kind, per tenant and per application
/// within a tenant, in a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FamilyLimits {
    pub tenant_writes: u32,
    pub app_writes: u32,
    pub tenant_requests: u32,
    pub app_requests: u32,
    pub window_seconds: u32,
}

impl FamilyLimits {
    /// Graph's published Intune limits.
    pub fn documented(family: Family) -> FamilyLimits {
        match family {
            Family::Enrollment => FamilyLimits {
                tenant_writes: 200,
                app_writes: 100,
                tenant_requests: 2_000,
                app_requests: 1_000,
                window_seconds: 20,
            },
            Family::Devices => FamilyLimits {
                tenant_writes: 400,
                app_writes: 200,
                tenant_requests: 4_000,
                app_requests: 2_000,
                window_seconds: 20,
            },
        }
    }

    fn apply(&mut self, partial: &PartialLimits) {
        let PartialLimits { tenant_writes, app_writes, tenant_requests, app_requests, window_seconds } = *partial;
        self.tenant_writes = tenant_writes.unwrap_or(self.tenant_writes);
        self.app_writes = app_writes.unwrap_or(self.app_writes);
        self.tenant_requests = tenant_requests.unwrap_or(self.tenant_requests);
        self.app_requests = app_requests.unwrap_or(self.app_requests);
        self.window_seconds = window_seconds.unwrap_or(self.window_seconds);
    }
}

/// Some of a family's limits; the rest come from the level below.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PartialLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_writes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_writes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_requests: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_requests: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_seconds: Option<u32>,
}

impl PartialLimits {
    fn validate(&self, at: &str) -> Result<(), String> {
        for (name, value) in [
            ("tenantWrites", self.tenant_writes),
            ("appWrites", self.app_writes),
            ("tenantRequests", self.tenant_requests),
            ("appRequests", self.app_requests),
        ] {
            if value.is_some_and(|v| v > MAX_LIMIT) {
                return Err(format!("{at}.{name} is above {MAX_LIMIT}"));
            }
        }
        if self.window_seconds.is_some_and(|w| w == 0 || w > MAX_WINDOW_SECONDS) {
            return Err(format!("{at}.windowSeconds must be between 1 and {MAX_WINDOW_SECONDS}"));
        }
        Ok(())
    }
}

/// Limits per family for one tenant or one application.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FamilyOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrollment: Option<PartialLimits>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<PartialLimits>,
}

impl FamilyOverrides {
    fn get(&self, family: Family) -> Option<&PartialLimits> {
        match family {
            Family::Enrollment => self.enrollment.as_ref(),
            Family::Devices => self.devices.as_ref(),
        }
    }

    fn validate(&self, at: &str) -> Result<(), String> {
        for family in Family::ALL {
            if let Some(partial) = self.get(family) {
                partial.validate(&format!("{at}.{}", family.name()))?;
            }
        }
        Ok(())
    }
}

/// A limits document: what `--throttling FILE` holds and `PUT /_dmsync/throttling`'s `limits`
/// carries. Per family, then per tenant, then per application (the most specific wins, field
/// by field); what none of them sets is the documented limit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitsDocument {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrollment: Option<PartialLimits>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<PartialLimits>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tenants: BTreeMap<TenantId, FamilyOverrides>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub apps: BTreeMap<String, FamilyOverrides>,
}

impl LimitsDocument {
    pub fn validate(&self) -> Result<(), String> {
        FamilyOverrides { enrollment: self.enrollment, devices: self.devices }.validate("limits")?;
        if self.tenants.len() > MAX_OVERRIDES || self.apps.len() > MAX_OVERRIDES {
            return Err(format!(
                "at most {MAX_OVERRIDES} tenants and {MAX_OVERRIDES} apps may have limits of their own"
            ));
        }
        for (tenant, overrides) in &self.tenants {
            overrides.validate(&format!("limits.tenants.{tenant}"))?;
        }
        for (app, overrides) in &self.apps {
            if app.is_empty() || app.chars().count() > MAX_APP_ID_CHARS {
                return Err(format!("limits.apps has a key that is not an application id: '{app}'"));
            }
            overrides.validate(&format!("limits.apps.{app}"))?;
        }
        Ok(())
    }

    /// The limits of `family` for a request of `tenant` and `app`.
    pub fn resolve(&self, family: Family, tenant: TenantId, app: Option<&str>) -> FamilyLimits {
        let mut limits = FamilyLimits::documented(family);
        let base = match family {
            Family::Enrollment => self.enrollment.as_ref(),
            Family::Devices => self.devices.as_ref(),
        };
        let tenant_level = self.tenants.get(&tenant).and_then(|o| o.get(family));
        let app_level = app.and_then(|app| self.apps.get(app)).and_then(|o| o.get(family));
        for partial in [base, tenant_level, app_level].into_iter().flatten() {
            limits.apply(partial);
        }
        limits
    }

    /// Parses and checks a document.
    pub fn parse(bytes: &[u8]) -> Result<LimitsDocument, String> {
        let document: LimitsDocument =
            serde_json::from_slice(bytes).map_err(|e| format!("the throttling limits are not valid: {e}"))?;
        document.validate()?;
        Ok(document)
    }
}

/// Whether and how requests are throttled: `--throttling off|documented|FILE`, or the admin API.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ThrottlingSetting {
    #[default]
    Off,
    Documented,
    Custom(Arc<LimitsDocument>),
}

impl ThrottlingSetting {
    /// The value of `--throttling`: `off`, `documented`, or the path of a limits file (JSON).
    pub fn from_flag(text: &str) -> Result<ThrottlingSetting, String> {
        match text {
            "off" => Ok(ThrottlingSetting::Off),
            "documented" => Ok(ThrottlingSetting::Documented),
            path => {
                let file = std::fs::File::open(path)
                    .map_err(|e| format!("'{path}' is neither off, documented nor a readable limits file: {e}"))?;
                let mut bytes = Vec::new();
                file.take(MAX_FILE_BYTES + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|e| format!("reading the limits file '{path}': {e}"))?;
                if bytes.len() as u64 > MAX_FILE_BYTES {
                    return Err(format!("the limits file '{path}' is larger than {MAX_FILE_BYTES} bytes"));
                }
                let document = LimitsDocument::parse(&bytes).map_err(|e| format!("{path}: {e}"))?;
                Ok(ThrottlingSetting::Custom(Arc::new(document)))
            }
        }
    }

    pub fn mode(&self) -> &'static str {
        match self {
            ThrottlingSetting::Off => "off",
            ThrottlingSetting::Documented => "documented",
            ThrottlingSetting::Custom(_) => "custom",
        }
    }

    fn document(&self) -> Option<Arc<LimitsDocument>> {
        match self {
            ThrottlingSetting::Off => None,
            ThrottlingSetting::Documented => Some(Arc::new(LimitsDocument::default())),
            ThrottlingSetting::Custom(document) => Some(document.clone()),
        }
    }

    /// What `GET /_dmsync/throttling` answers: the mode, each family's limits as they apply to
    /// a tenant and app without limits of their own, and the overrides.
    pub fn describe(&self) -> serde_json::Value {
        let document = match self {
            ThrottlingSetting::Custom(document) => document.as_ref().clone(),
            _ => LimitsDocument::default(),
        };
        let base = |family: Family| {
            let mut limits = FamilyLimits::documented(family);
            let partial = match family {
                Family::Enrollment => document.enrollment,
                Family::Devices => document.devices,
            };
            if let Some(partial) = partial {
                limits.apply(&partial);
            }
            limits
        };
        serde_json::json!({
            "mode": self.mode(),
            "limits": {
                "enrollment": base(Family::Enrollment),
                "devices": base(Family::Devices),
                "tenants": document.tenants,
                "apps": document.apps,
            },
        })
    }
}

/// A bucket's window in memory: what is left of it, and when it ends (windows of different
/// limits differ in length, so each keeps its own end).
#[derive(Clone, Copy, Debug)]
struct Window {
    tokens_left: u32,
    ends: OffsetDateTime,
}

/// Where the buckets are.
enum Buckets {
    Memory(Mutex<HashMap<String, Window>>),
    Shared(Arc<dyn ThrottleStore>),
}

/// The throttle: the setting in force (switchable at run time) and the buckets.
pub struct Throttle {
    setting: RwLock<(ThrottlingSetting, Option<Arc<LimitsDocument>>)>,
    buckets: Buckets,
}

impl Throttle {
    /// A throttle keeping its buckets in memory (one process owns the database).
    pub fn in_memory(setting: ThrottlingSetting) -> Throttle {
        Throttle::with_buckets(setting, Buckets::Memory(Mutex::new(HashMap::new())))
    }

    /// A throttle whose buckets are in `store`, shared by every replica on it.
    pub fn shared(setting: ThrottlingSetting, store: Arc<dyn ThrottleStore>) -> Throttle {
        Throttle::with_buckets(setting, Buckets::Shared(store))
    }

    fn with_buckets(setting: ThrottlingSetting, buckets: Buckets) -> Throttle {
        let document = setting.document();
        Throttle { setting: RwLock::new((setting, document)), buckets }
    }

    pub fn setting(&self) -> ThrottlingSetting {
        self.setting.read().unwrap_or_else(|e| e.into_inner()).0.clone()
    }

    /// Switches the setting on this process. The buckets keep their windows: a lowered limit
    /// applies to the window under way, a raised one from the next.
    pub fn set(&self, setting: ThrottlingSetting) {
        let document = setting.document();
        *self.setting.write().unwrap_or_else(|e| e.into_inner()) = (setting, document);
    }

    /// Takes the tokens a request needs, or refuses it with the time until they are there.
    /// Only requests whose token verified are counted, and only in a throttled family.
    pub async fn admit(
        &self,
        identity: &RequestIdentity,
        method: &Method,
        path: &str,
        now: OffsetDateTime,
    ) -> Result<(), ApiError> {
        let Some(document) = self.setting.read().unwrap_or_else(|e| e.into_inner()).1.clone() else {
            return Ok(());
        };
        let Some(tenant) = identity.tenant else { return Ok(()) };
        let Some(family) = Family::of_path(path) else { return Ok(()) };
        let app = identity.app.as_deref();
        let limits = document.resolve(family, tenant, app);
        let buckets = buckets_for(family, &limits, tenant, app, is_write(method));
        let window = Duration::seconds(i64::from(limits.window_seconds));
        let wait = match &self.buckets {
            Buckets::Memory(windows) => {
                let mut windows = windows.lock().unwrap_or_else(|e| e.into_inner());
                take_in_memory(&mut windows, &buckets, window, now)
            }
            Buckets::Shared(store) => store.take_throttle_tokens(&buckets, window, now).await?,
        };
        match wait {
            None => Ok(()),
            Some(wait) => Err(ApiError::Throttled { retry_after_seconds: retry_after_seconds(wait) }),
        }
    }
}

/// Writes are what change state: everything but reads and the preflight.
fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The buckets a request takes a token from, in key order (the order the shared store locks
/// them in). A write counts as a request of any kind too.
fn buckets_for(
    family: Family,
    limits: &FamilyLimits,
    tenant: TenantId,
    app: Option<&str>,
    write: bool,
) -> Vec<ThrottleBucket> {
    let family = family.name();
    let mut buckets =
        vec![ThrottleBucket { key: format!("{family}/requests/{tenant}"), capacity: limits.tenant_requests }];
    if let Some(app) = app {
        buckets
            .push(ThrottleBucket { key: format!("{family}/requests/{tenant}/{app}"), capacity: limits.app_requests });
    }
    if write {
        buckets.push(ThrottleBucket { key: format!("{family}/writes/{tenant}"), capacity: limits.tenant_writes });
        if let Some(app) = app {
            buckets
                .push(ThrottleBucket { key: format!("{family}/writes/{tenant}/{app}"), capacity: limits.app_writes });
        }
    }
    buckets.sort_by(|a, b| a.key.cmp(&b.key));
    buckets
}

/// The in-memory twin of the shared store's take: every bucket or none.
fn take_in_memory(
    windows: &mut HashMap<String, Window>,
    buckets: &[ThrottleBucket],
    window: Duration,
    now: OffsetDateTime,
) -> Option<Duration> {
    if windows.len() > PRUNE_ABOVE {
        windows.retain(|_, w| now < w.ends);
    }
    let mut wait: Option<Duration> = None;
    for bucket in buckets {
        let fresh = Window { tokens_left: bucket.capacity, ends: now + window };
        // Looked up before inserting, so a bucket already open costs no copy of its key.
        let state = match windows.get_mut(bucket.key.as_str()) {
            Some(state) => state,
            None => windows.entry(bucket.key.clone()).or_insert(fresh),
        };
        if now >= state.ends {
            *state = fresh;
        }
        state.tokens_left = state.tokens_left.min(bucket.capacity);
        if state.tokens_left == 0 {
            // A request that read the Clock just before another started the window waits no
            // longer than a window.
            let until = (state.ends - now).min(window);
            wait = Some(wait.map_or(until, |w| w.max(until)));
        }
    }
    if wait.is_some() {
        return wait;
    }
    for bucket in buckets {
        if let Some(state) = windows.get_mut(bucket.key.as_str()) {
            state.tokens_left -= 1;
        }
    }
    None
}

/// `Retry-After` in whole seconds, rounded up and never 0: clients parse it as an integer,
/// and one that waited less than the wait would be refused again.
fn retry_after_seconds(wait: Duration) -> u64 {
    let nanos = wait.whole_nanoseconds().max(0) as u128;
    (nanos.div_ceil(1_000_000_000) as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::uuid;

    const T: TenantId = TenantId::from_uuid(uuid!("aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"));

    #[test]
    fn paths_map_to_families() {
        assert_eq!(Family::of_path("/beta/deviceManagement/windowsAutopilotSettings/sync"), Some(Family::Enrollment));
        assert_eq!(
            Family::of_path("/beta/deviceManagement/importedWindowsAutopilotDeviceIdentities"),
            Some(Family::Enrollment)
        );
        assert_eq!(Family::of_path("/v1.0/deviceManagement/managedDevices/abc"), Some(Family::Devices));
        assert_eq!(Family::of_path("/v1.0/DEVICEMANAGEMENT/ManagedDevices('x')"), Some(Family::Devices));
        assert_eq!(Family::of_path("/v1.0/groups"), None);
        assert_eq!(Family::of_path("/v1.0/devices"), None);
        assert_eq!(Family::of_path("/v1.0/$batch"), None);
        assert_eq!(Family::of_path("/_dmsync/throttling"), None);
    }

    #[test]
    fn a_window_holds_exactly_its_limit_and_refills_when_it_ends() {
        let mut windows = HashMap::new();
        let buckets = [ThrottleBucket { key: "k".into(), capacity: 3 }];
        let start = OffsetDateTime::UNIX_EPOCH;
        let window = Duration::seconds(20);
        for i in 0..3 {
            assert_eq!(take_in_memory(&mut windows, &buckets, window, start + Duration::seconds(i)), None);
        }
        let wait = take_in_memory(&mut windows, &buckets, window, start + Duration::milliseconds(3500)).unwrap();
        assert_eq!(wait, Duration::milliseconds(16_500));
        assert_eq!(retry_after_seconds(wait), 17);
        assert_eq!(take_in_memory(&mut windows, &buckets, window, start + window), None);
    }

    #[test]
    fn a_refusal_by_one_bucket_takes_from_none() {
        let mut windows = HashMap::new();
        let small = ThrottleBucket { key: "app".into(), capacity: 1 };
        let large = ThrottleBucket { key: "tenant".into(), capacity: 5 };
        let now = OffsetDateTime::UNIX_EPOCH;
        let window = Duration::seconds(20);
        assert_eq!(take_in_memory(&mut windows, &[small.clone(), large.clone()], window, now), None);
        assert!(take_in_memory(&mut windows, &[small, large.clone()], window, now).is_some());
        for _ in 0..4 {
            assert_eq!(take_in_memory(&mut windows, std::slice::from_ref(&large), window, now), None);
        }
    }

    #[test]
    fn retry_after_is_whole_seconds_and_at_least_one() {
        assert_eq!(retry_after_seconds(Duration::milliseconds(1)), 1);
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
        assert_eq!(retry_after_seconds(Duration::seconds(2)), 2);
        assert_eq!(retry_after_seconds(Duration::milliseconds(2001)), 3);
    }

    #[test]
    fn the_most_specific_limit_wins_field_by_field() {
        let document = LimitsDocument::parse(
            br#"{"enrollment":{"appWrites":10,"windowSeconds":5},
                 "tenants":{"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa":{"enrollment":{"tenantWrites":7}}},
                 "apps":{"app-1":{"enrollment":{"appWrites":3}}}}"#,
        )
        .unwrap();
        let limits = document.resolve(Family::Enrollment, T, Some("app-1"));
        assert_eq!(
            limits,
            FamilyLimits {
                tenant_writes: 7,
                app_writes: 3,
                tenant_requests: 2_000,
                app_requests: 1_000,
                window_seconds: 5
            }
        );
        assert_eq!(document.resolve(Family::Devices, T, Some("app-1")), FamilyLimits::documented(Family::Devices));
    }

    #[test]
    fn bad_documents_are_refused() {
        assert!(LimitsDocument::parse(br#"{"enrollment":{"appWrites":-1}}"#).is_err());
        assert!(LimitsDocument::parse(br#"{"enrollment":{"windowSeconds":0}}"#).is_err());
        assert!(LimitsDocument::parse(br#"{"enrollment":{"bogus":1}}"#).is_err());
        assert!(LimitsDocument::parse(br#"{"groups":{}}"#).is_err());
        assert!(LimitsDocument::parse(br#"{"tenants":{"not-a-guid":{}}}"#).is_err());
        assert!(LimitsDocument::parse(br#"{"enrollment":{"appWrites":99999999999}}"#).is_err());
    }
}
