//! Tenants, app registrations, users and signing keys: the built-in identity provider's data.

use crate::TenantId;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    /// The initial domain, for example `contoso.onmicrosoft.com`.
    pub domain: String,
}

/// An app registration: a confidential client (a secret, and certificates kept apart as
/// [`AppCertificate`]s) that can use the client-credentials grant, and a client its users sign
/// in to.
#[derive(Debug, Clone)]
pub struct AppRegistration {
    pub tenant_id: TenantId,
    pub client_id: Uuid,
    /// The service principal's object id in the tenant (the `oid` of app tokens).
    pub object_id: Uuid,
    pub display_name: String,
    /// Salted hash of the client secret; see the server's `secrets` module.
    pub secret_hash: String,
    /// Application permissions granted by admin consent (the `roles` claim).
    pub roles: Vec<String>,
    /// Delegated permissions granted to the app: a user's token through it carries those of
    /// them the user consented to. `None` leaves the user's consent alone (the development app,
    /// and apps created before apps had delegated permissions).
    pub delegated_permissions: Option<Vec<String>>,
    /// Where the authorization endpoint may send a code, besides the loopback addresses that
    /// every client may use.
    pub redirect_uris: Vec<String>,
}

/// A certificate registered to an app, whose key signs the app's client assertions. It is
/// found by its thumbprints, which assertions name in their `x5t` (SHA-1) or `x5t#S256` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppCertificate {
    /// SHA-1 of the DER certificate, as Entra shows it: upper-case hex.
    pub thumbprint_sha1: String,
    /// SHA-256 of the DER certificate, upper-case hex.
    pub thumbprint_sha256: String,
    pub certificate_pem: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// A work or school user that can use the password (ROPC) grant.
#[derive(Debug, Clone)]
pub struct User {
    pub tenant_id: TenantId,
    pub object_id: Uuid,
    pub user_principal_name: String,
    pub display_name: String,
    pub password_hash: String,
    /// Delegated permissions consented for this user (the `scp` claim).
    pub scopes: Vec<String>,
}

/// An RS256 signing key of the built-in identity provider. Kept in the database so that tokens
/// stay valid across restarts and across replicas.
#[derive(Debug, Clone)]
pub struct SigningKey {
    pub kid: String,
    /// PKCS#8 PEM of the private key.
    pub private_pem: String,
    /// Base64url modulus and exponent, as they go into the JWKS.
    pub n: String,
    pub e: String,
    pub created_at: OffsetDateTime,
}

/// An authorization code the `authorize` endpoint issued after a user signed in, waiting for
/// the token endpoint to redeem it once. Only a hash of the code is kept: whoever reads the
/// table cannot redeem what is in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCode {
    /// SHA-256 of the code, base64url: the key it is looked up by.
    pub code_hash: String,
    pub tenant_id: TenantId,
    pub client_id: Uuid,
    pub user_object_id: Uuid,
    /// The user's UPN at sign-in, by which the user is found again at redemption.
    pub user_principal_name: String,
    /// The fingerprint of the user's password hash at sign-in: a password changed since the
    /// code was issued revokes it, as it revokes refresh tokens.
    pub password_fingerprint: String,
    /// The delegated scopes granted at sign-in.
    pub scopes: Vec<String>,
    /// The `scope` the client asked for, which the token response echoes.
    pub requested_scope: String,
    /// The redirect URI of the authorization request; the token request must name the same.
    pub redirect_uri: String,
    /// The PKCE S256 challenge: base64url SHA-256 of the client's `code_verifier`.
    pub code_challenge: String,
    pub nonce: Option<String>,
    pub issued_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// What redeeming an authorization code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRedemption {
    /// The code was unused; it is now marked redeemed, and no second redemption can succeed.
    Redeemed(AuthorizationCode),
    /// The code was redeemed before.
    AlreadyRedeemed(AuthorizationCode),
    /// No such code (never issued, or removed after it expired).
    Unknown,
}
