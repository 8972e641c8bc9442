//! The local certificate authority as the database keeps it. The server makes and uses it
//! (`dmsync-server`'s `tls` module); the store only keeps one, the first one written.

use time::OffsetDateTime;

/// The CA certificate and its private key, both PEM. Replicas sharing a database present the
/// same CA, so a client that trusts it once trusts every replica.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredCertificateAuthority {
    pub certificate_pem: String,
    /// PKCS#8 PEM. Never logged: `Debug` leaves it out.
    pub private_key_pem: String,
    pub created_at: OffsetDateTime,
}

impl std::fmt::Debug for StoredCertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredCertificateAuthority")
            .field("certificate_pem", &self.certificate_pem)
            .field("private_key_pem", &"<redacted>")
            .field("created_at", &self.created_at)
            .finish()
    }
}
