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

use std::collections::BTreeMap;
use std::collections::hash_map::Entry;
use std::io::Read;
use std::sync::{Arc, Mutex, RwLock};

use axum::http::Method;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use dmsync_core::TenantId;
use dmsync_core::store::{ThrottleBucket, ThrottleStore};
use foldhash::HashMap as FastMap;

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
        // Prefixes compared by length first, since every request asks: most paths are not
        // Intune's, and those that are share a prefix of known length.
        fn strip_prefix_ignoring_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
            let head = text.as_bytes().get(..prefix.len())?;
            head.eq_ignore_ascii_case(prefix.as_bytes()).then(|| &text[prefix.len()..])
        }
        let path = path.trim_start_matches('/');
        let rest = strip_prefix_ignoring_case(path, "beta/").or_else(|| strip_prefix_ignoring_case(path, "v1.0/"))?;
        let rest = strip_prefix_ignoring_case(rest, "deviceManagement/")?;
        let collection = &rest[..rest.find(['/', '(']).unwrap_or(rest.len())];
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

impl Window {
    /// Starts a new window when this one has ended, and applies a lowered limit to it.
    fn refresh(&mut self, capacity: u32, window: Duration, now: OffsetDateTime) {
        if now >= self.ends {
            *self = Window { tokens_left: capacity, ends: now + window };
        }
        self.tokens_left = self.tokens_left.min(capacity);
    }
}

/// What a bucket counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Requests,
    Writes,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Requests => "requests",
            Kind::Writes => "writes",
        }
    }
}

/// The tenant-wide part of a bucket's identity: one family's writes or requests of one tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Scope {
    family: Family,
    kind: Kind,
    tenant: TenantId,
}

/// One bucket a request takes a token from: the tenant's, or with `app` the application's
/// within the tenant.
#[derive(Clone, Copy, Debug)]
struct Bucket<'a> {
    scope: Scope,
    app: Option<&'a str>,
    capacity: u32,
}

impl Bucket<'_> {
    /// The bucket's key in the shared store.
    fn key(&self) -> String {
        let Scope { family, kind, tenant } = self.scope;
        let (family, kind) = (family.name(), kind.name());
        match self.app {
            Some(app) => format!("{family}/{kind}/{tenant}/{app}"),
            None => format!("{family}/{kind}/{tenant}"),
        }
    }
}

/// The buckets a request takes a token from: at most four (requests and writes, the tenant's
/// and the application's), so they live on the stack. A write counts as a request of any kind too.
struct RequestBuckets<'a>([Option<Bucket<'a>>; 4]);

impl<'a> RequestBuckets<'a> {
    fn of(family: Family, limits: &FamilyLimits, tenant: TenantId, app: Option<&'a str>, write: bool) -> Self {
        let bucket = |kind, app, capacity| Bucket { scope: Scope { family, kind, tenant }, app, capacity };
        let requests = Some(bucket(Kind::Requests, None, limits.tenant_requests));
        let app_requests = app.map(|app| bucket(Kind::Requests, Some(app), limits.app_requests));
        let (writes, app_writes) = if write {
            (
                Some(bucket(Kind::Writes, None, limits.tenant_writes)),
                app.map(|app| bucket(Kind::Writes, Some(app), limits.app_writes)),
            )
        } else {
            (None, None)
        };
        RequestBuckets([requests, app_requests, writes, app_writes])
    }

    fn iter(&self) -> impl Iterator<Item = &Bucket<'a>> {
        self.0.iter().flatten()
    }

    /// The buckets as the shared store takes them: by key, in key order (the order it locks
    /// them in, so two replicas never wait on each other's locks).
    fn for_store(&self) -> Vec<ThrottleBucket> {
        let mut buckets: Vec<ThrottleBucket> =
            self.iter().map(|b| ThrottleBucket { key: b.key(), capacity: b.capacity }).collect();
        buckets.sort_by(|a, b| a.key.cmp(&b.key));
        buckets
    }
}

/// The in-memory buckets' windows. A tenant's buckets are keyed by a small copyable key and an
/// application's by that key and the application's id, looked up by reference, so that taking
/// a token formats, copies and allocates nothing once the bucket exists. The maps hash with
/// foldhash rather than SipHash: their keys come from verified tokens, not from what a client
/// may choose, and SipHash was most of what a throttled request's check cost.
#[derive(Default)]
struct MemoryWindows {
    tenants: FastMap<Scope, Window>,
    apps: FastMap<Scope, FastMap<Box<str>, Window>>,
    /// Windows in both maps, counted as they are opened, so that pruning is decided without a walk.
    len: usize,
}

impl MemoryWindows {
    /// The bucket's window, opened as `fresh` if the bucket has none.
    fn open(&mut self, bucket: &Bucket<'_>, fresh: Window) -> &mut Window {
        let (window, opened) = match bucket.app {
            None => match self.tenants.entry(bucket.scope) {
                Entry::Occupied(entry) => (entry.into_mut(), false),
                Entry::Vacant(entry) => (entry.insert(fresh), true),
            },
            Some(app) => {
                let apps = self.apps.entry(bucket.scope).or_default();
                // Looked up before inserting, so a bucket already open costs no copy of its key.
                if apps.contains_key(app) {
                    (apps.get_mut(app).expect("just found"), false)
                } else {
                    (apps.entry(app.into()).or_insert(fresh), true)
                }
            }
        };
        self.len += usize::from(opened);
        window
    }

    fn get_mut(&mut self, bucket: &Bucket<'_>) -> Option<&mut Window> {
        match bucket.app {
            None => self.tenants.get_mut(&bucket.scope),
            Some(app) => self.apps.get_mut(&bucket.scope)?.get_mut(app),
        }
    }

    /// Drops the windows that have ended (a bucket without one is full).
    fn prune(&mut self, now: OffsetDateTime) {
        self.tenants.retain(|_, w| now < w.ends);
        self.apps.retain(|_, apps| {
            apps.retain(|_, w| now < w.ends);
            !apps.is_empty()
        });
        self.len = self.tenants.len() + self.apps.values().map(FastMap::len).sum::<usize>();
    }
}

/// Where the buckets are.
enum Buckets {
    Memory(Mutex<MemoryWindows>),
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
        Throttle::with_buckets(setting, Buckets::Memory(Mutex::new(MemoryWindows::default())))
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
        let buckets = RequestBuckets::of(family, &limits, tenant, app, is_write(method));
        let window = Duration::seconds(i64::from(limits.window_seconds));
        let wait = match &self.buckets {
            Buckets::Memory(windows) => {
                let mut windows = windows.lock().unwrap_or_else(|e| e.into_inner());
                take_in_memory(&mut windows, &buckets, window, now)
            }
            Buckets::Shared(store) => store.take_throttle_tokens(&buckets.for_store(), window, now).await?,
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

/// The in-memory twin of the shared store's take: every bucket or none.
fn take_in_memory(
    windows: &mut MemoryWindows,
    buckets: &RequestBuckets<'_>,
    window: Duration,
    now: OffsetDateTime,
) -> Option<Duration> {
    if windows.len > PRUNE_ABOVE {
        windows.prune(now);
    }
    let mut wait: Option<Duration> = None;
    for bucket in buckets.iter() {
        let fresh = Window { tokens_left: bucket.capacity, ends: now + window };
        let state = windows.open(bucket, fresh);
        state.refresh(bucket.capacity, window, now);
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
    for bucket in buckets.iter() {
        if let Some(state) = windows.get_mut(bucket) {
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

    fn buckets(list: &[(Kind, Option<&'static str>, u32)]) -> RequestBuckets<'static> {
        let mut all = [None; 4];
        for (slot, &(kind, app, capacity)) in all.iter_mut().zip(list) {
            *slot = Some(Bucket { scope: Scope { family: Family::Enrollment, kind, tenant: T }, app, capacity });
        }
        RequestBuckets(all)
    }

    #[test]
    fn a_window_holds_exactly_its_limit_and_refills_when_it_ends() {
        let mut windows = MemoryWindows::default();
        let buckets = buckets(&[(Kind::Requests, None, 3)]);
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
        let mut windows = MemoryWindows::default();
        let both = buckets(&[(Kind::Requests, None, 5), (Kind::Requests, Some("app"), 1)]);
        let tenant = buckets(&[(Kind::Requests, None, 5)]);
        let now = OffsetDateTime::UNIX_EPOCH;
        let window = Duration::seconds(20);
        assert_eq!(take_in_memory(&mut windows, &both, window, now), None);
        assert!(take_in_memory(&mut windows, &both, window, now).is_some());
        for _ in 0..4 {
            assert_eq!(take_in_memory(&mut windows, &tenant, window, now), None);
        }
        assert!(take_in_memory(&mut windows, &tenant, window, now).is_some());
    }

    #[test]
    fn applications_of_a_tenant_have_buckets_of_their_own() {
        let mut windows = MemoryWindows::default();
        let now = OffsetDateTime::UNIX_EPOCH;
        let window = Duration::seconds(20);
        let first = buckets(&[(Kind::Requests, Some("app-1"), 1)]);
        let second = buckets(&[(Kind::Requests, Some("app-2"), 1)]);
        assert_eq!(take_in_memory(&mut windows, &first, window, now), None);
        assert_eq!(take_in_memory(&mut windows, &second, window, now), None);
        assert!(take_in_memory(&mut windows, &first, window, now).is_some());
        assert_eq!(windows.len, 2);
    }

    #[test]
    fn ended_windows_are_pruned_past_the_bound() {
        let mut windows = MemoryWindows::default();
        let window = Duration::seconds(20);
        let start = OffsetDateTime::UNIX_EPOCH;
        // Limits no loop reaches: only the number of buckets matters here.
        let limits = FamilyLimits {
            tenant_writes: MAX_LIMIT,
            app_writes: MAX_LIMIT,
            tenant_requests: MAX_LIMIT,
            app_requests: MAX_LIMIT,
            window_seconds: 20,
        };
        let apps: Vec<String> = (0..=PRUNE_ABOVE).map(|i| format!("app-{i}")).collect();
        for app in &apps {
            let one = RequestBuckets::of(Family::Devices, &limits, T, Some(app), false);
            assert_eq!(take_in_memory(&mut windows, &one, window, start), None);
        }
        assert_eq!(windows.len, PRUNE_ABOVE + 2);
        let later = buckets(&[(Kind::Requests, None, 1)]);
        assert_eq!(take_in_memory(&mut windows, &later, window, start + window), None);
        assert_eq!(windows.len, 1);
    }

    #[test]
    fn the_shared_store_gets_the_buckets_by_key_in_key_order() {
        let limits = FamilyLimits::documented(Family::Enrollment);
        let write = RequestBuckets::of(Family::Enrollment, &limits, T, Some("app-1"), true);
        let keys: Vec<(String, u32)> = write.for_store().into_iter().map(|b| (b.key, b.capacity)).collect();
        let t = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";
        assert_eq!(
            keys,
            [
                (format!("enrollment/requests/{t}"), 2_000),
                (format!("enrollment/requests/{t}/app-1"), 1_000),
                (format!("enrollment/writes/{t}"), 200),
                (format!("enrollment/writes/{t}/app-1"), 100),
            ]
        );
        let read = RequestBuckets::of(Family::Devices, &limits, T, None, false);
        assert_eq!(read.for_store().len(), 1);
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
