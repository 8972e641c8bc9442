//! HTTPS: the local certificate authority, the leaf certificates it issues on demand, the
//! rustls server configuration, and the TLS side of accepting a connection (the handshake's
//! deadline, and a plain-HTTP request sent to the TLS port).
//!
//! The CA is an ECDSA P-256 key and a self-signed certificate valid for ten years, made on the
//! first start and kept in the database (`SystemStore::insert_certificate_authority`, first
//! writer wins), so a restart and every replica on a shared database present the same CA, and a
//! client trusts it once. Its private key is read from the database into memory and used to
//! sign leaves; it is never written anywhere else, never served and never logged.
//!
//! Certificates are checked by clients against their own clocks, not against dmsync's Clock,
//! which the admin API moves forward: a leaf dated on an advanced Clock would not be valid yet
//! for any client. So certificate validity is measured on the system clock (a `Clock` without
//! an offset), and only tests give the resolver another one.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use time::OffsetDateTime;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use dmsync_core::certificate::StoredCertificateAuthority;
use dmsync_core::clock::OffsetClock;
use dmsync_core::{Clock, Store};

use crate::state::AppState;

/// Where the CA certificate is served, without a token.
pub const CA_PEM_PATH: &str = "/_dmsync/ca.pem";

/// The CA's subject. A leaf names its issuer by this subject, rebuilt from these constants
/// (rcgen cannot read a stored certificate back without a parser dmsync does not otherwise
/// need), so they must never change: a stored CA with another subject would no longer chain.
const CA_COMMON_NAME: &str = "dmsync local development CA";
const CA_ORGANIZATION: &str = "dmsync";
const CA_VALIDITY: time::Duration = time::Duration::days(3650);

/// How long a leaf is valid, and how much of that must remain for it to be presented: with
/// less than a third left it is issued again.
const LEAF_VALIDITY: time::Duration = time::Duration::days(30);
const LEAF_RENEW_WHEN_LEFT: time::Duration = time::Duration::days(10);

/// Certificates start a little before they are made, for clients whose clocks run behind.
const BACKDATE: time::Duration = time::Duration::hours(1);

/// Leaves kept per resolver. A resolver that allows names by predicate could be asked for any
/// number of them; past this the cache starts over rather than grow.
const LEAF_CACHE_MAX: usize = 1024;

/// The local certificate authority, with its key in memory.
pub struct CertificateAuthority {
    ca_pem: String,
    issuer: Arc<Issuer<'static, KeyPair>>,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key stays out of every log line.
        f.debug_struct("CertificateAuthority").field("ca_pem", &self.ca_pem).finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// The CA stored in the database, or a new one stored there now (created at `now`, on the
    /// system clock). Replicas starting together each make one, and all of them use the one
    /// that was stored first.
    pub async fn load_or_create(store: &dyn Store, now: OffsetDateTime) -> anyhow::Result<CertificateAuthority> {
        let stored = match store.certificate_authority().await? {
            Some(stored) => stored,
            None => {
                let created = tokio::task::spawn_blocking(move || create(now)).await??;
                let stored = store.insert_certificate_authority(&created).await?;
                if stored == created {
                    tracing::info!("created the local certificate authority; GET /_dmsync/ca.pem serves it");
                }
                stored
            }
        };
        CertificateAuthority::from_stored(&stored)
    }

    fn from_stored(stored: &StoredCertificateAuthority) -> anyhow::Result<CertificateAuthority> {
        let key = KeyPair::from_pem(&stored.private_key_pem)
            .map_err(|e| anyhow::anyhow!("the stored certificate authority's key does not load: {e}"))?;
        let issuer = Issuer::new(ca_params(stored.created_at), key);
        Ok(CertificateAuthority { ca_pem: stored.certificate_pem.clone(), issuer: Arc::new(issuer) })
    }

    /// The CA certificate, PEM, for clients to trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A resolver that issues leaves for the names `names` allows, dated on the system clock.
    pub fn resolver(&self, names: NamePolicy) -> Arc<LeafResolver> {
        self.resolver_with_clock(names, Arc::new(OffsetClock::default()))
    }

    /// As [`CertificateAuthority::resolver`], with the clock that dates and renews leaves.
    pub fn resolver_with_clock(&self, names: NamePolicy, clock: Arc<dyn Clock>) -> Arc<LeafResolver> {
        Arc::new(LeafResolver { issuer: self.issuer.clone(), names, clock, leaves: Mutex::new(HashMap::new()) })
    }
}

fn ca_params(now: OffsetDateTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, CA_COMMON_NAME);
    subject.push(DnType::OrganizationName, CA_ORGANIZATION);
    params.distinguished_name = subject;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = now - BACKDATE;
    params.not_after = now + CA_VALIDITY;
    params.serial_number = Some(random_serial());
    params
}

fn create(now: OffsetDateTime) -> anyhow::Result<StoredCertificateAuthority> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).context("generating the CA key")?;
    let certificate = ca_params(now).self_signed(&key).context("signing the CA certificate")?;
    Ok(StoredCertificateAuthority {
        certificate_pem: certificate.pem(),
        private_key_pem: key.serialize_pem(),
        created_at: now,
    })
}

/// A positive serial of 16 random bytes, as RFC 5280 asks (unique per issuer, at most 20 bytes).
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

/// Which names a resolver issues leaves for.
#[derive(Clone)]
pub enum NamePolicy {
    /// One leaf naming all of these (host names and IP addresses), presented to every client
    /// whatever name its hello asks for, or none: clients connecting to an IP address send no
    /// name, and one that asks for another name gets this leaf and refuses it itself, with an
    /// error that names the mismatch, as with most servers.
    Fixed(Vec<String>),
    /// A leaf per name the predicate allows, issued when a client first asks for it. A hello
    /// with a name it refuses, or with no name, ends the handshake.
    Allowed(Arc<dyn Fn(&str) -> bool + Send + Sync>),
}

impl fmt::Debug for NamePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NamePolicy::Fixed(names) => f.debug_tuple("Fixed").field(names).finish(),
            NamePolicy::Allowed(_) => f.write_str("Allowed(..)"),
        }
    }
}

/// Issues, caches and renews leaves signed by the CA, for rustls to present.
pub struct LeafResolver {
    issuer: Arc<Issuer<'static, KeyPair>>,
    names: NamePolicy,
    clock: Arc<dyn Clock>,
    /// Each leaf by the name it was asked for (the fixed leaf under the empty name), with the
    /// time from which it is issued again.
    leaves: Mutex<HashMap<String, (Arc<CertifiedKey>, OffsetDateTime)>>,
}

impl fmt::Debug for LeafResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeafResolver").field("names", &self.names).finish_non_exhaustive()
    }
}

impl LeafResolver {
    /// The leaf for a client that asked for `server_name` (or for none), issuing it if there
    /// is none yet or the one there is has less than a third of its life left.
    pub fn leaf_for(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let (key, names) = match &self.names {
            NamePolicy::Fixed(names) => (String::new(), names.clone()),
            NamePolicy::Allowed(allowed) => {
                let name = server_name?.trim_end_matches('.').to_ascii_lowercase();
                if !allowed(&name) {
                    tracing::debug!(tls.server_name = %name, "TLS hello for a name this listener does not serve");
                    return None;
                }
                (name.clone(), vec![name])
            }
        };
        let now = self.clock.now();
        let mut leaves = self.leaves.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((leaf, renew_at)) = leaves.get(&key)
            && now < *renew_at
        {
            return Some(leaf.clone());
        }
        match issue_leaf(&self.issuer, &names, now) {
            Ok(leaf) => {
                if leaves.len() >= LEAF_CACHE_MAX {
                    leaves.clear();
                }
                leaves.insert(key, (leaf.clone(), now + LEAF_VALIDITY - LEAF_RENEW_WHEN_LEFT));
                Some(leaf)
            }
            Err(e) => {
                tracing::warn!(error = %e, names = ?names, "could not issue a TLS leaf certificate");
                None
            }
        }
    }
}

impl ResolvesServerCert for LeafResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.leaf_for(client_hello.server_name())
    }
}

fn issue_leaf(
    issuer: &Issuer<'static, KeyPair>,
    names: &[String],
    now: OffsetDateTime,
) -> anyhow::Result<Arc<CertifiedKey>> {
    let mut params = CertificateParams::default();
    params.subject_alt_names = names
        .iter()
        .map(|name| {
            let bare = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')).unwrap_or(name);
            Ok(match bare.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(name.clone().try_into()?),
            })
        })
        .collect::<Result<_, rcgen::Error>>()?;
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, names.first().map_or("dmsync", String::as_str));
    params.distinguished_name = subject;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - BACKDATE;
    params.not_after = now + LEAF_VALIDITY;
    params.serial_number = Some(random_serial());
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let certificate = params.signed_by(&key, issuer)?;
    let private = PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let certified = CertifiedKey::from_der(vec![certificate.der().clone()], private, &provider())?;
    Ok(Arc::new(certified))
}

/// An operator's own certificate chain and key (`--tls-cert`, `--tls-key`), checked at start:
/// both files must be readable PEM and the key must be the certificate's.
pub fn operator_certificate(cert_file: &Path, key_file: &Path) -> anyhow::Result<Arc<dyn ResolvesServerCert>> {
    let chain = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("--tls-cert {}: not a readable PEM certificate file: {e}", cert_file.display()))?;
    if chain.is_empty() {
        anyhow::bail!("--tls-cert {}: the file holds no certificate", cert_file.display());
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| anyhow::anyhow!("--tls-key {}: not a readable PEM private key file: {e}", key_file.display()))?;
    let certified = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| {
        anyhow::anyhow!(
            "--tls-cert {} and --tls-key {} do not go together: {e}",
            cert_file.display(),
            key_file.display()
        )
    })?;
    Ok(Arc::new(rustls::sign::SingleCertAndKey::from(certified)))
}

/// The server configuration for a resolver: TLS 1.2 and 1.3 with rustls's default provider, no
/// client certificates, and ALPN offering HTTP/2 first, then HTTP/1.1.
pub fn server_config(resolver: Arc<dyn ResolvesServerCert>) -> Arc<rustls::ServerConfig> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("the default provider supports the default protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// `GET /_dmsync/ca.pem`: the CA certificate, public like a discovery document, for clients to
/// add to what they trust.
pub fn router() -> Router<AppState> {
    Router::new().route(CA_PEM_PATH, get(ca_pem))
}

async fn ca_pem(State(state): State<AppState>) -> Response {
    let mut response = state.certificate_authority().ca_pem().to_owned().into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-pem-file"));
    response
}

/// rustls's default provider, aws-lc-rs: the one reqwest already brings, so there is one.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// What the first bytes of a connection to the TLS port turned out to be.
pub enum Accepted {
    /// The handshake completed.
    Tls(Box<TlsStream<TcpStream>>),
    /// The client spoke plain HTTP: the stream is untouched, for a refusal in plain HTTP.
    PlainHttp(TcpStream),
    /// Nothing usable: the handshake failed or timed out, or the client went away.
    Failed,
}

/// Completes the TLS handshake on an accepted connection within `deadline`, or recognises a
/// plain-HTTP request (its first byte is a letter, where a TLS record starts with 0x16). A
/// failed handshake is the client's problem, often a client that does not trust the CA, so it
/// is logged at debug and costs the server nothing but this connection.
pub async fn accept(acceptor: &TlsAcceptor, stream: TcpStream, deadline: Duration) -> Accepted {
    let attempt = async {
        let mut first = [0u8; 1];
        match stream.peek(&mut first).await {
            Ok(1) if first[0].is_ascii_alphabetic() => return Accepted::PlainHttp(stream),
            Ok(1) => {}
            _ => return Accepted::Failed,
        }
        match acceptor.accept(stream).await {
            Ok(tls) => Accepted::Tls(Box::new(tls)),
            Err(e) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                Accepted::Failed
            }
        }
    };
    match tokio::time::timeout(deadline, attempt).await {
        Ok(accepted) => accepted,
        Err(_) => {
            tracing::debug!(deadline = ?deadline, "TLS handshake timed out");
            Accepted::Failed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{ServerName, UnixTime};
    use std::sync::atomic::{AtomicI64, Ordering};

    /// A clock tests move by hand.
    struct ManualClock(AtomicI64);

    impl ManualClock {
        fn advance(&self, by: time::Duration) {
            self.0.fetch_add(by.whole_seconds(), Ordering::SeqCst);
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> OffsetDateTime {
            OffsetDateTime::from_unix_timestamp(self.0.load(Ordering::SeqCst)).unwrap()
        }
    }

    fn authority() -> (CertificateAuthority, StoredCertificateAuthority) {
        let stored = create(OffsetDateTime::now_utc()).unwrap();
        (CertificateAuthority::from_stored(&stored).unwrap(), stored)
    }

    /// Whether a client that trusts only `ca_pem` accepts `leaf` for `name` at `at`.
    fn verifies(ca_pem: &str, leaf: &CertifiedKey, name: &str, at: OffsetDateTime) -> Result<(), rustls::Error> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap()).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder(Arc::new(roots)).build().unwrap();
        let at = UnixTime::since_unix_epoch(Duration::from_secs(at.unix_timestamp() as u64));
        verifier
            .verify_server_cert(&leaf.cert[0], &[], &ServerName::try_from(name.to_owned()).unwrap(), &[], at)
            .map(|_| ())
    }

    #[test]
    fn the_ca_is_a_p256_ca_with_dmsyncs_subject_and_a_ten_year_life() {
        let stored = create(OffsetDateTime::now_utc()).unwrap();
        assert!(stored.certificate_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(format!("{stored:?}").contains("<redacted>"));
        assert!(!format!("{stored:?}").contains("PRIVATE KEY"));
        let key = KeyPair::from_pem(&stored.private_key_pem).unwrap();
        assert_eq!(key.algorithm(), &rcgen::PKCS_ECDSA_P256_SHA256);
        let der = CertificateDer::from_pem_slice(stored.certificate_pem.as_bytes()).unwrap();
        // The subject's strings appear in the DER as they are.
        let contains = |needle: &str| der.windows(needle.len()).any(|w| w == needle.as_bytes());
        assert!(contains(CA_COMMON_NAME) && contains(CA_ORGANIZATION));
    }

    #[test]
    fn a_fixed_leaf_names_every_host_and_address_and_chains_to_the_ca() {
        let (ca, stored) = authority();
        let names = vec!["localhost".into(), "127.0.0.1".into(), "::1".into(), "dmsync.test".into()];
        let resolver = ca.resolver(NamePolicy::Fixed(names));
        let leaf = resolver.leaf_for(None).unwrap();
        let now = OffsetDateTime::now_utc();
        for name in ["localhost", "127.0.0.1", "::1", "dmsync.test"] {
            verifies(&stored.certificate_pem, &leaf, name, now).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        // Another name gets the same leaf, which a client then refuses for that name.
        let other = resolver.leaf_for(Some("elsewhere.test")).unwrap();
        assert!(Arc::ptr_eq(&leaf, &other));
        assert!(verifies(&stored.certificate_pem, &other, "elsewhere.test", now).is_err());
        // A CA the client does not trust is refused.
        let (_, stranger) = authority();
        assert!(verifies(&stranger.certificate_pem, &leaf, "localhost", now).is_err());
        // A stored CA loaded again (a restart) still issues leaves that chain to it.
        let again = CertificateAuthority::from_stored(&stored).unwrap();
        let leaf = again.resolver(NamePolicy::Fixed(vec!["localhost".into()])).leaf_for(None).unwrap();
        verifies(&stored.certificate_pem, &leaf, "localhost", now).unwrap();
    }

    #[test]
    fn allowed_names_get_a_leaf_each_and_others_none() {
        let (ca, stored) = authority();
        let allowed: Arc<dyn Fn(&str) -> bool + Send + Sync> = Arc::new(|name| name.ends_with(".microsoft.com"));
        let resolver = ca.resolver(NamePolicy::Allowed(allowed));
        let graph = resolver.leaf_for(Some("Graph.Microsoft.com")).unwrap();
        verifies(&stored.certificate_pem, &graph, "graph.microsoft.com", OffsetDateTime::now_utc()).unwrap();
        assert!(verifies(&stored.certificate_pem, &graph, "login.microsoft.com", OffsetDateTime::now_utc()).is_err());
        assert!(Arc::ptr_eq(&graph, &resolver.leaf_for(Some("graph.microsoft.com")).unwrap()));
        assert!(resolver.leaf_for(Some("example.com")).is_none());
        assert!(resolver.leaf_for(None).is_none());
    }

    #[test]
    fn a_leaf_lives_thirty_days_and_is_renewed_with_a_third_left() {
        let (ca, stored) = authority();
        let start = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let clock = Arc::new(ManualClock(AtomicI64::new(start.unix_timestamp())));
        let resolver = ca.resolver_with_clock(NamePolicy::Fixed(vec!["localhost".into()]), clock.clone());
        let first = resolver.leaf_for(None).unwrap();
        verifies(&stored.certificate_pem, &first, "localhost", start + time::Duration::days(29)).unwrap();
        assert!(verifies(&stored.certificate_pem, &first, "localhost", start + time::Duration::days(31)).is_err());
        clock.advance(time::Duration::days(19));
        assert!(Arc::ptr_eq(&first, &resolver.leaf_for(None).unwrap()), "two thirds of its life: kept");
        clock.advance(time::Duration::days(2));
        let second = resolver.leaf_for(None).unwrap();
        assert!(!Arc::ptr_eq(&first, &second), "less than a third left: issued again");
        verifies(&stored.certificate_pem, &second, "localhost", start + time::Duration::days(50)).unwrap();
    }

    #[test]
    fn an_operator_certificate_must_match_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let other = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_owned()]).unwrap().self_signed(&key).unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let cert_file = write("cert.pem", &cert.pem());
        let key_file = write("key.pem", &key.serialize_pem());
        let other_key = write("other.pem", &other.serialize_pem());
        operator_certificate(&cert_file, &key_file).unwrap();
        let refusal = operator_certificate(&cert_file, &other_key).unwrap_err().to_string();
        assert!(refusal.contains("do not go together"), "{refusal}");
        let refusal = operator_certificate(&dir.path().join("missing.pem"), &key_file).unwrap_err().to_string();
        assert!(refusal.contains("--tls-cert"), "{refusal}");
        let refusal = operator_certificate(&cert_file, &cert_file).unwrap_err().to_string();
        assert!(refusal.contains("--tls-key"), "{refusal}");
    }
}
