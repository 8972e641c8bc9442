//! The built-in identity provider's RS256 keys. A key is generated on first start and kept in
//! the database, so tokens survive restarts and are valid on every replica. The oldest key signs.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use dmsync_core::identity::SigningKey;
use dmsync_core::{Store, StoreError};

struct Loaded {
    signing_kid: String,
    encoding: EncodingKey,
    decoding: HashMap<String, DecodingKey>,
    jwks: Vec<Value>,
}

pub struct KeyRing {
    loaded: RwLock<Loaded>,
    last_reload: RwLock<Instant>,
}

/// How often an unknown `kid` may make us re-read the keys table (another replica's new key).
const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

fn load(keys: &[SigningKey]) -> Result<Loaded, StoreError> {
    let first = keys.first().ok_or_else(|| StoreError::Database("no signing key".into()))?;
    let encoding = EncodingKey::from_rsa_pem(first.private_pem.as_bytes())
        .map_err(|e| StoreError::Database(format!("stored signing key is unusable: {e}")))?;
    let mut decoding = HashMap::new();
    let mut jwks = Vec::new();
    for k in keys {
        let key = DecodingKey::from_rsa_components(&k.n, &k.e)
            .map_err(|e| StoreError::Database(format!("stored public key is unusable: {e}")))?;
        decoding.insert(k.kid.clone(), key);
        jwks.push(json!({
            "kty": "RSA", "use": "sig", "kid": k.kid, "x5t": k.kid, "n": k.n, "e": k.e,
            "issuer": "https://login.microsoftonline.com/{tenantid}/v2.0",
        }));
    }
    Ok(Loaded { signing_kid: first.kid.clone(), encoding, decoding, jwks })
}

/// A new 2048-bit RSA key. Its `kid` (and `x5t`) is a 27-character base64url thumbprint, the
/// shape Entra ID uses.
pub fn generate_key(now: OffsetDateTime) -> Result<SigningKey, StoreError> {
    let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048)
        .map_err(|e| StoreError::Database(format!("RSA key generation failed: {e}")))?;
    let pem = private
        .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
        .map_err(|e| StoreError::Database(format!("PEM encoding failed: {e}")))?;
    let n = private.n().to_bytes_be();
    let e = private.e().to_bytes_be();
    let thumbprint = &Sha256::digest(&n)[..20];
    Ok(SigningKey {
        kid: URL_SAFE_NO_PAD.encode(thumbprint),
        private_pem: pem.to_string(),
        n: URL_SAFE_NO_PAD.encode(n),
        e: URL_SAFE_NO_PAD.encode(e),
        created_at: now,
    })
}

impl KeyRing {
    /// Loads the keys, generating the first one on an empty database. Replicas starting
    /// together may each generate one; only the first insert is kept, and all load that one.
    pub async fn load_or_create(store: &dyn Store, now: OffsetDateTime) -> Result<KeyRing, StoreError> {
        let mut keys = store.signing_keys().await?;
        if keys.is_empty() {
            let key = tokio::task::spawn_blocking(move || generate_key(now))
                .await
                .map_err(|e| StoreError::Database(format!("key generation task: {e}")))??;
            store.insert_first_signing_key(&key).await?;
            keys = store.signing_keys().await?;
        }
        Ok(KeyRing { loaded: RwLock::new(load(&keys)?), last_reload: RwLock::new(Instant::now()) })
    }

    pub fn sign<C: Serialize>(&self, claims: &C) -> Result<String, jsonwebtoken::errors::Error> {
        let loaded = self.loaded.read().expect("key ring lock");
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("JWT".into());
        header.kid = Some(loaded.signing_kid.clone());
        header.x5t = Some(loaded.signing_kid.clone());
        jsonwebtoken::encode(&header, claims, &loaded.encoding)
    }

    pub fn decoding_key(&self, kid: &str) -> Option<DecodingKey> {
        self.loaded.read().expect("key ring lock").decoding.get(kid).cloned()
    }

    /// Re-reads the keys table, at most once per second, when a token names a `kid` we lack.
    pub async fn reload_for_unknown_kid(&self, store: &dyn Store) {
        {
            let last = self.last_reload.read().expect("key ring lock");
            if last.elapsed() < RELOAD_INTERVAL {
                return;
            }
        }
        *self.last_reload.write().expect("key ring lock") = Instant::now();
        match store.signing_keys().await.and_then(|keys| load(&keys)) {
            Ok(loaded) => *self.loaded.write().expect("key ring lock") = loaded,
            Err(e) => tracing::warn!(error = %e, "could not reload signing keys"),
        }
    }

    /// `{"keys":[…]}` for `/{tenant}/discovery/v2.0/keys`.
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.loaded.read().expect("key ring lock").jwks })
    }
}
