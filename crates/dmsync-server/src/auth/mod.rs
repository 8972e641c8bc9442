//! Authentication and authorization. A request's bearer token is checked once, by the
//! [`Caller`] extractor, the way Graph checks it; a handler then asks the caller for a
//! [`TenantScope`] for its operation. Holding a `TenantScope` is the proof that the permission
//! check passed, and it is the only way to learn which tenant's data a handler may touch.

pub mod assertions;
pub mod authorize;
pub mod device_code;
pub mod external;
pub mod idp;
pub mod keys;
pub mod secrets;
pub mod sessions;
pub mod sign_in_page;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use axum::extract::FromRef;
use dmsync_core::permissions::{self, AccountType, Operation, PermissionProfile, PrincipalKind};
use dmsync_core::{Clock, PERSONAL_ACCOUNT_TENANT, Store, StoreResult, TenantId};

use crate::error::{ApiError, AuthFailure};
use external::ExternalKeys;
use keys::KeyRing;

/// Audiences Graph accepts: its resource URI with or without the slash, and its app id.
pub const GRAPH_AUDIENCES: &[&str] =
    &["https://graph.microsoft.com", "https://graph.microsoft.com/", "00000003-0000-0000-c000-000000000000"];

/// Clock skew tolerated on `exp` and `nbf`: .NET's default, which Graph uses.
pub const LEEWAY_SECONDS: i64 = 300;

pub fn v1_issuer(tenant: TenantId) -> String {
    format!("https://sts.windows.net/{tenant}/")
}

/// Tenants known to exist. Only a reset or a restore of a snapshot deletes tenants: this
/// process forgets them then ([`KnownTenants::forget_all`]), and where other replicas could
/// delete them (PostgreSQL) an entry is believed only for `ttl`.
pub struct KnownTenants {
    store: Arc<dyn Store>,
    ttl: Option<std::time::Duration>,
    known: std::sync::RwLock<foldhash::HashMap<TenantId, std::time::Instant>>,
    /// Moves on with every `forget_all`, so that a lookup that overlapped one does not bring
    /// back a tenant it may have seen before the reset.
    generation: std::sync::atomic::AtomicU64,
}

impl KnownTenants {
    /// `ttl`: how long a tenant seen to exist is believed to, or `None` for as long as this
    /// process runs (where it is the only writer).
    pub fn new(store: Arc<dyn Store>, ttl: Option<std::time::Duration>) -> KnownTenants {
        KnownTenants { store, ttl, known: Default::default(), generation: Default::default() }
    }

    /// Whether the tenant exists, reading the database only the first time (or once per `ttl`).
    pub async fn exists(&self, tenant: TenantId) -> StoreResult<bool> {
        let seen = self.known.read().unwrap_or_else(|e| e.into_inner()).get(&tenant).copied();
        if let Some(seen) = seen
            && self.ttl.is_none_or(|ttl| seen.elapsed() < ttl)
        {
            return Ok(true);
        }
        use std::sync::atomic::Ordering;
        let generation = self.generation.load(Ordering::Acquire);
        let exists = self.store.tenant(tenant).await?.is_some();
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        if exists && self.generation.load(Ordering::Acquire) == generation {
            known.insert(tenant, std::time::Instant::now());
        } else {
            known.remove(&tenant);
        }
        Ok(exists)
    }

    /// Forgets every tenant, after a reset or a restore may have deleted some.
    pub fn forget_all(&self) {
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        known.clear();
    }
}

/// Checks bearer tokens and turns them into callers. It holds its own dependencies, so that
/// the [`Caller`] extractor works on any router state it can be taken from.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<VerifierInner>,
}

/// What a [`Verifier`] is built from.
pub struct VerifierParts {
    pub keys: Arc<KeyRing>,
    /// Where unknown key ids are looked up, and external tenants provisioned.
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub tenants: Arc<KnownTenants>,
    pub profile: PermissionProfile,
    pub external: Option<Arc<ExternalKeys>>,
}

struct VerifierInner {
    parts: VerifierParts,
    /// Tokens already checked. RS256 verification costs about half a millisecond of CPU here
    /// (docs/PERFORMANCE.md), more than everything else a request does, and clients send the
    /// same token for an hour, so each token is checked once: its signature, and every claim
    /// check that does not depend on time. Lifetime is checked on every request, against the
    /// Clock.
    checked: CheckedTokens,
}

impl Verifier {
    pub fn new(parts: VerifierParts) -> Verifier {
        Verifier { inner: Arc::new(VerifierInner { parts, checked: CheckedTokens::default() }) }
    }
}

/// At most this many checked tokens are remembered; when full, the cache starts over. A token
/// that falls out is simply checked again.
const CHECKED_TOKENS_MAX: usize = 10_000;

/// What checking a token with a good signature concluded, apart from its lifetime.
struct CheckedToken {
    /// The whole token: a hit must be this exact text.
    token: Box<str>,
    exp: Option<i64>,
    nbf: Option<i64>,
    /// The caller, or why the claims refuse the token.
    outcome: Result<Arc<Principal>, AuthFailure>,
}

/// Checked tokens by a keyed hash of the end of their signature, confirmed by comparing the whole
/// token. Not a SHA-256 of the token: on machines without SHA instructions that took half of a
/// rejected sync's instructions (docs/PERFORMANCE.md). Only tokens whose signature verified
/// are inserted, and a token that shares a key with another simply replaces it.
#[derive(Default)]
struct CheckedTokens {
    hasher: foldhash::fast::RandomState,
    entries: std::sync::RwLock<foldhash::HashMap<u64, Arc<CheckedToken>>>,
}

impl CheckedTokens {
    /// The last bytes of a token are the end of its signature, which no one but the signer can
    /// choose for a token that verifies, so they tell the tokens in the cache apart as well as the
    /// whole signature does, for a fraction of the hashing. Sound whatever a client sends: the key
    /// only finds a candidate, a hit must equal the whole token, and a token whose signature did
    /// not verify is never inserted, so two tokens that end alike can replace each other in the
    /// cache but never stand for each other.
    fn key(&self, token: &[u8]) -> u64 {
        use std::hash::BuildHasher;
        const KEY_BYTES: usize = 32;
        self.hasher.hash_one(&token[token.len().saturating_sub(KEY_BYTES)..])
    }

    fn get(&self, token: &[u8]) -> Option<Arc<CheckedToken>> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.get(&self.key(token)).filter(|hit| hit.token.as_bytes() == token).cloned()
    }

    fn insert(&self, checked: Arc<CheckedToken>) {
        let key = self.key(checked.token.as_bytes());
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CHECKED_TOKENS_MAX {
            entries.clear();
        }
        entries.insert(key, checked);
    }
}

/// Who is calling, established from a valid token.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant_id: TenantId,
    pub kind: PrincipalKind,
    pub account: AccountType,
    pub permissions: Vec<String>,
    pub object_id: Option<String>,
    pub app_id: Option<String>,
    pub external: bool,
}

#[derive(Deserialize)]
struct TokenHeader {
    alg: Option<String>,
    kid: Option<String>,
    /// RFC 7515 §4.1.11: extensions the recipient must understand, or reject the token. dmsync
    /// understands none, so a token that has `crit` at all is refused. A `null` counts too: the
    /// RFC forbids it, and `Option` alone would read it as absent.
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(deserializer).map(|_| true)
}

/// The longest bearer token read, in characters. Entra's largest access tokens (a user in many
/// groups, before the groups overage claim takes over) are a few kilobytes; this is several
/// times that.
pub const MAX_TOKEN_LENGTH: usize = 32 * 1024;
/// The largest decoded JOSE header. Entra's carry `typ`, `alg`, `kid`, `x5t` and a `nonce`.
pub const MAX_TOKEN_HEADER_BYTES: usize = 4 * 1024;
/// The deepest nesting of objects and arrays in a token's header and claims.
pub const MAX_TOKEN_JSON_DEPTH: usize = 16;

/// The header of a token split at its dots, read before any key is touched: the header's and
/// the claims' size and nesting are bounded (jsonwebtoken decodes the claims itself, later),
/// and a header with `crit` is refused.
fn read_header(parts: &[&str]) -> Result<TokenHeader, AuthFailure> {
    let [header, claims, _signature] = parts else { return Err(AuthFailure::Unparseable) };
    let header: TokenHeader =
        serde_json::from_str(&token_segment(header, MAX_TOKEN_HEADER_BYTES)?).map_err(|_| AuthFailure::Unparseable)?;
    token_segment(claims, MAX_TOKEN_LENGTH)?;
    if header.crit {
        return Err(AuthFailure::ValidationFailure);
    }
    Ok(header)
}

/// Decodes one base64url segment of a token into JSON text, refusing it before decoding when it
/// is longer than `max_bytes` would encode to, and after decoding when it nests too deep.
fn token_segment(segment: &str, max_bytes: usize) -> Result<String, AuthFailure> {
    let segment = segment.trim_end_matches('=');
    if segment.len() > max_bytes.div_ceil(3) * 4 {
        return Err(AuthFailure::Unparseable);
    }
    let text = URL_SAFE_NO_PAD
        .decode(segment)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or(AuthFailure::Unparseable)?;
    if dmsync_graph::bounded::exceeds_depth(&text, MAX_TOKEN_JSON_DEPTH) {
        return Err(AuthFailure::Unparseable);
    }
    Ok(text)
}

#[derive(Clone, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Clone, Deserialize)]
struct Claims {
    aud: Option<Audience>,
    iss: Option<String>,
    tid: Option<String>,
    exp: Option<i64>,
    nbf: Option<i64>,
    scp: Option<String>,
    roles: Option<Vec<String>>,
    idtyp: Option<String>,
    oid: Option<String>,
    appid: Option<String>,
    azp: Option<String>,
}

impl Verifier {
    /// Checks a bearer token as Graph does and says who it belongs to. The token may come as
    /// bytes: one found in the cache of checked tokens equals text that was read before, so
    /// only a new token is read as text (a kilobyte on every request otherwise).
    pub async fn verify(&self, token: &(impl AsRef<[u8]> + ?Sized)) -> Result<Arc<Principal>, AuthFailure> {
        let token = token.as_ref().trim_ascii();
        if token.is_empty() {
            return Err(AuthFailure::Missing);
        }
        if token.len() > MAX_TOKEN_LENGTH {
            return Err(AuthFailure::Unparseable);
        }
        let checked = match self.inner.checked.get(token) {
            Some(hit) => hit,
            None => {
                let token = std::str::from_utf8(token).map_err(|_| AuthFailure::Unparseable)?;
                let (claims, external) = self.verify_signature(token).await?;
                let checked = Arc::new(CheckedToken {
                    token: token.into(),
                    exp: claims.exp,
                    nbf: claims.nbf,
                    outcome: self.check_claims(claims, external).map(Arc::new),
                });
                self.inner.checked.insert(checked.clone());
                checked
            }
        };
        check_lifetime(&checked, self.inner.parts.clock.now().unix_timestamp())?;
        checked.outcome.clone()
    }

    /// Checks the token's form, algorithm and signature, and returns its claims unchecked.
    async fn verify_signature(&self, token: &str) -> Result<(Claims, bool), AuthFailure> {
        if !token.contains('.') {
            return Err(AuthFailure::NotAJwt);
        }
        let parts: Vec<&str> = token.split('.').collect();
        if parts.len() != 3 {
            return Err(AuthFailure::Unparseable);
        }
        let header = read_header(&parts)?;
        // RS256 only: this refuses `none`, HS256 (the public-key-as-HMAC-secret attack) and
        // everything else before any key is touched.
        if header.alg.as_deref() != Some("RS256") {
            return Err(AuthFailure::ValidationFailure);
        }
        let kid = header.kid.ok_or(AuthFailure::ValidationFailure)?;
        let parts = &self.inner.parts;
        let (key, external) = match parts.keys.decoding_key(&kid) {
            Some(k) => (k, false),
            None => {
                parts.keys.reload_for_unknown_kid(parts.store.as_ref()).await;
                match parts.keys.decoding_key(&kid) {
                    Some(k) => (k, false),
                    None => match &parts.external {
                        Some(ext) => (ext.key(&kid).await.ok_or(AuthFailure::ValidationFailure)?, true),
                        None => return Err(AuthFailure::ValidationFailure),
                    },
                }
            }
        };

        // The signature is checked by jsonwebtoken; the claims below are checked by hand so that
        // each failure gets Graph's own message and time comes from the Clock.
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|_| AuthFailure::ValidationFailure)?
            .claims;
        Ok((claims, external))
    }

    /// Checks what a valid signature does not prove and time does not change: audience,
    /// tenant and issuer; and says who the caller is. Lifetime is [`check_lifetime`]'s.
    fn check_claims(&self, claims: Claims, external: bool) -> Result<Principal, AuthFailure> {
        let audiences = match claims.aud {
            Some(Audience::One(a)) => vec![a],
            Some(Audience::Many(a)) => a,
            None => vec![],
        };
        let extra = self
            .inner
            .parts
            .external
            .as_ref()
            .filter(|_| external)
            .map(|e| e.config.audiences.as_slice())
            .unwrap_or(&[]);
        if !audiences.iter().any(|a| GRAPH_AUDIENCES.contains(&a.as_str()) || extra.contains(a)) {
            return Err(AuthFailure::InvalidAudience);
        }

        let tenant_id: TenantId =
            claims.tid.as_deref().and_then(|t| t.parse::<TenantId>().ok()).ok_or(AuthFailure::ValidationFailure)?;
        let iss = claims.iss.unwrap_or_default();
        let issuer_ok = iss == v1_issuer(tenant_id)
            || (external && iss == format!("https://login.microsoftonline.com/{tenant_id}/v2.0"));
        if !issuer_ok {
            return Err(AuthFailure::ValidationFailure);
        }

        let scopes: Vec<String> = claims.scp.unwrap_or_default().split_whitespace().map(str::to_owned).collect();
        let kind = match claims.idtyp.as_deref() {
            Some("app") => PrincipalKind::Application,
            Some("user") => PrincipalKind::Delegated,
            _ if !scopes.is_empty() => PrincipalKind::Delegated,
            _ => PrincipalKind::Application,
        };
        let permissions = match kind {
            PrincipalKind::Delegated => scopes,
            PrincipalKind::Application => claims.roles.unwrap_or_default(),
        };
        Ok(Principal {
            tenant_id,
            kind,
            account: if tenant_id == PERSONAL_ACCOUNT_TENANT { AccountType::Personal } else { AccountType::Work },
            permissions,
            object_id: claims.oid,
            app_id: claims.appid.or(claims.azp),
            external,
        })
    }
}

/// A token's lifetime, on the Clock, with Graph's leeway. It is checked before the other claims,
/// so an expired token says so whatever else is wrong with it.
fn check_lifetime(checked: &CheckedToken, now: i64) -> Result<(), AuthFailure> {
    let exp = checked.exp.ok_or(AuthFailure::ValidationFailure)?;
    if now > exp + LEEWAY_SECONDS {
        return Err(AuthFailure::Expired);
    }
    if checked.nbf.is_some_and(|nbf| now + LEEWAY_SECONDS < nbf) {
        return Err(AuthFailure::NotYetValid);
    }
    Ok(())
}

/// The authenticated caller of a Graph route.
pub struct Caller {
    pub principal: Arc<Principal>,
    profile: permissions::PermissionProfile,
}

/// Proof that the caller may perform one operation in one tenant.
#[derive(Debug, Clone, Copy)]
pub struct TenantScope {
    tenant_id: TenantId,
}

impl TenantScope {
    pub fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }
}

impl Caller {
    /// Checks the permission table for `op`; a refusal is Intune's 403.
    pub fn authorize(&self, op: Operation) -> Result<TenantScope, ApiError> {
        permissions::authorize(
            op,
            self.profile,
            self.principal.kind,
            self.principal.account,
            &self.principal.permissions,
        )
        .map_err(ApiError::Forbidden)?;
        Ok(TenantScope { tenant_id: self.principal.tenant_id })
    }
}

/// The token of an `Authorization: Bearer …` header, as text; `None` when the header is absent.
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    bearer_token_of(&parts.headers).and_then(|token| std::str::from_utf8(token).ok())
}

/// The token of an `Authorization: Bearer …` header among `headers`, as bytes, which are ASCII:
/// what `HeaderValue::to_str` accepts. A parsed header value holds no control character but
/// tab, so being ASCII is exactly what `to_str` checks, byte by byte; `is_ascii` checks a word
/// at a time, and no copy reads it again as UTF-8, which counts on a token of a kilobyte or
/// more read on every request.
pub fn bearer_token_of(headers: &axum::http::HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    if !value.is_ascii() {
        return None;
    }
    let value = value.trim_ascii();
    let (scheme, token) = match value.iter().position(|&b| b == b' ') {
        Some(space) => (&value[..space], &value[space + 1..]),
        None => (value, &b""[..]),
    };
    scheme.eq_ignore_ascii_case(b"bearer").then_some(token)
}

/// A request's bearer token, already verified by the control plane's gate
/// (`control::identify`), which leaves it in the request's context so that the route's
/// `Caller` does not verify the same token again.
#[derive(Clone, Debug)]
pub struct VerifiedToken(pub Arc<Principal>);

impl Verifier {
    /// The caller a bearer token names. A work account's tenant must exist, except that a
    /// real Entra tenant that trusts dmsync is provisioned on first sight.
    pub async fn caller(&self, token: &(impl AsRef<[u8]> + ?Sized)) -> Result<Caller, ApiError> {
        let principal = self.verify(token).await.map_err(ApiError::Unauthenticated)?;
        self.caller_of(principal).await
    }

    /// The caller a verified token names, with the tenant checks of [`Self::caller`].
    async fn caller_of(&self, principal: Arc<Principal>) -> Result<Caller, ApiError> {
        let parts = &self.inner.parts;
        if principal.account == AccountType::Work && !parts.tenants.exists(principal.tenant_id).await? {
            if principal.external {
                let tenant = dmsync_core::identity::Tenant {
                    id: principal.tenant_id,
                    domain: format!("{}.external", principal.tenant_id),
                };
                match parts.store.create_tenant(&tenant, parts.clock.now()).await {
                    Ok(()) | Err(dmsync_core::StoreError::AlreadyExists(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            } else {
                return Err(ApiError::Unauthenticated(AuthFailure::ValidationFailure));
            }
        }
        Ok(Caller { principal, profile: parts.profile })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller
where
    Verifier: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let verifier = Verifier::from_ref(state);
        let context = parts.extensions.get::<crate::http::context::RequestContext>();
        if let Some(VerifiedToken(principal)) = context.and_then(|c| c.verified_token()) {
            return verifier.caller_of(principal.clone()).await;
        }
        let token = bearer_token_of(&parts.headers).unwrap_or_default();
        verifier.caller(token).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn segment(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    fn read(token: &str) -> Result<TokenHeader, AuthFailure> {
        read_header(&token.split('.').collect::<Vec<_>>())
    }

    #[test]
    fn a_header_with_crit_is_refused_whatever_it_names() {
        let claims = segment(r#"{"tid":"x"}"#);
        assert!(read(&format!("{}.{claims}.sig", segment(r#"{"alg":"RS256","kid":"k"}"#))).is_ok());
        for crit in [r#"["b64"]"#, "[]", "null", r#""exp""#] {
            let header = segment(&format!(r#"{{"alg":"RS256","kid":"k","crit":{crit}}}"#));
            assert_eq!(read(&format!("{header}.{claims}.sig")).err(), Some(AuthFailure::ValidationFailure), "{crit}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// Random text in each segment, raw or as base64url of random bytes.
        #[test]
        fn random_tokens_never_panic(
            header in prop_oneof![".{0,200}", proptest::collection::vec(any::<u8>(), 0..300).prop_map(|b| URL_SAFE_NO_PAD.encode(b))],
            claims in prop_oneof![".{0,200}", proptest::collection::vec(any::<u8>(), 0..300).prop_map(|b| URL_SAFE_NO_PAD.encode(b))],
        ) {
            let _ = read(&format!("{header}.{claims}.sig"));
        }

        /// Headers and claims nested up to 100,000 deep are refused before they are parsed.
        #[test]
        fn deep_headers_and_claims_are_refused(
            depth in prop_oneof![Just(100_000usize), (MAX_TOKEN_JSON_DEPTH + 1)..1_000usize, 1_000..10_000usize],
            open in prop_oneof![Just("["), Just("{\"a\":")],
            in_header in any::<bool>(),
        ) {
            let deep = segment(&format!(r#"{{"alg":"RS256","x":{}1}}"#, open.repeat(depth)));
            let plain = segment(r#"{"alg":"RS256","kid":"k"}"#);
            let token = if in_header { format!("{deep}.{plain}.sig") } else { format!("{plain}.{deep}.sig") };
            prop_assert_eq!(read(&token).err(), Some(AuthFailure::Unparseable));
        }
    }
}
