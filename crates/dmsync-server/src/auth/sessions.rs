//! What a user's sign-in gives a public client besides the access token, so that MSAL caches an
//! account and renews silently: the OpenID Connect `id_token`, `client_info`, and a refresh
//! token that the `refresh_token` grant redeems.
//!
//! A refresh token is a JWT signed with the identity provider's key, so it needs no table and
//! holds across restarts and replicas: clients treat it as opaque. Its audience is dmsync's own
//! ([`REFRESH_AUDIENCE`]), which Graph's token check refuses, so it can never be used as an
//! access token, and the grant refuses every token without that audience. It names the user by
//! object id and UPN and carries a fingerprint of the password hash it was issued under: a user
//! who was removed or whose password changed since cannot redeem it, as in Entra.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use dmsync_core::TenantId;
use dmsync_core::identity::User;

use super::idp::{Issuer, TOKEN_LIFETIME_SECONDS};
use crate::error::ApiError;

/// The audience of dmsync's refresh tokens: no resource's, so no API accepts them.
pub const REFRESH_AUDIENCE: &str = "urn:dmsync:refresh_token";

/// How long a refresh token may go unused: Entra's default inactivity limit, 90 days.
pub const REFRESH_LIFETIME_SECONDS: i64 = 90 * 24 * 3600;

/// The claims of an `id_token` (v2.0), as Entra issues them to a public client.
#[derive(Serialize)]
struct IdTokenClaims {
    aud: String,
    iss: String,
    iat: i64,
    nbf: i64,
    exp: i64,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
    oid: String,
    preferred_username: String,
    sub: String,
    tid: String,
    uti: String,
    ver: &'static str,
}

/// The claims of a refresh token.
#[derive(Serialize, Deserialize)]
pub struct RefreshClaims {
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub tid: TenantId,
    pub oid: Uuid,
    pub upn: String,
    /// The client the token was issued to; only it may redeem it.
    pub azp: String,
    /// The delegated scopes granted at sign-in, space-separated.
    pub scp: String,
    /// [`password_fingerprint`] of the user's password when the token was issued.
    pub pwd: String,
    pub uti: String,
}

/// Why a refresh token is not redeemed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshRefusal {
    /// Not a refresh token of this identity provider (malformed, forged, another audience).
    Invalid,
    /// Unused for longer than [`REFRESH_LIFETIME_SECONDS`].
    Expired,
}

/// A fingerprint of the user's stored password hash: it changes when the password does, and
/// reveals nothing about the password.
pub fn password_fingerprint(user: &User) -> String {
    let digest = Sha256::digest(user.password_hash.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

/// `client_info`: the user's home account (`uid`, `utid`), base64url JSON, which MSAL keys its
/// cache by.
pub fn client_info(user: &User) -> String {
    let info = serde_json::json!({ "uid": user.object_id, "utid": user.tenant_id });
    URL_SAFE_NO_PAD.encode(info.to_string())
}

fn unique_token_id() -> String {
    URL_SAFE_NO_PAD.encode(Uuid::new_v4().as_bytes())
}

impl Issuer {
    /// Signs the user's `id_token` for `client_id`; its issuer is the v2.0 issuer on the host
    /// the client signed in on (`origin`), as the discovery document names it. It repeats the
    /// authorization request's `nonce`, which MSAL checks.
    pub async fn id_token(
        &self,
        user: &User,
        client_id: &str,
        origin: &str,
        nonce: Option<&str>,
    ) -> Result<String, ApiError> {
        self.keys().wait_until_ready().await;
        let now = self.now().unix_timestamp();
        let claims = IdTokenClaims {
            aud: client_id.to_owned(),
            iss: format!("{origin}/{}/v2.0", user.tenant_id),
            iat: now,
            nbf: now,
            exp: now + TOKEN_LIFETIME_SECONDS,
            name: user.display_name.clone(),
            nonce: nonce.map(str::to_owned),
            oid: user.object_id.to_string(),
            preferred_username: user.user_principal_name.clone(),
            sub: user.object_id.to_string(),
            tid: user.tenant_id.to_string(),
            uti: unique_token_id(),
            ver: "2.0",
        };
        self.keys().sign(&claims).map_err(|e| ApiError::Internal(format!("id token signing: {e}")))
    }

    /// Signs a refresh token for the user, the client and the scopes granted.
    pub async fn refresh_token(&self, user: &User, client_id: &str, scopes: &[String]) -> Result<String, ApiError> {
        self.keys().wait_until_ready().await;
        let now = self.now().unix_timestamp();
        let claims = RefreshClaims {
            aud: REFRESH_AUDIENCE.to_owned(),
            iat: now,
            exp: now + REFRESH_LIFETIME_SECONDS,
            tid: user.tenant_id,
            oid: user.object_id,
            upn: user.user_principal_name.clone(),
            azp: client_id.to_owned(),
            scp: scopes.join(" "),
            pwd: password_fingerprint(user),
            uti: unique_token_id(),
        };
        self.keys().sign(&claims).map_err(|e| ApiError::Internal(format!("refresh token signing: {e}")))
    }

    /// The claims of a refresh token this identity provider signed and that has not expired on
    /// the Clock. Whether its user may still redeem it is the grant's to check.
    pub fn read_refresh_token(&self, token: &str) -> Result<RefreshClaims, RefreshRefusal> {
        if token.len() > super::idp::MAX_FORM_BYTES {
            return Err(RefreshRefusal::Invalid);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| RefreshRefusal::Invalid)?;
        let key = header.kid.as_deref().and_then(|kid| self.keys().decoding_key(kid)).ok_or(RefreshRefusal::Invalid)?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[REFRESH_AUDIENCE]);
        // Expiry is checked on the Clock below, which tests move forward.
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<RefreshClaims>(token, &key, &validation)
            .map_err(|_| RefreshRefusal::Invalid)?
            .claims;
        if claims.exp <= self.now().unix_timestamp() {
            return Err(RefreshRefusal::Expired);
        }
        Ok(claims)
    }
}
