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

/// An app registration that can use the client-credentials grant.
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
