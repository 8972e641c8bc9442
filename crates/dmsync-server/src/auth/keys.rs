//! The built-in identity provider's RS256 keys. A key is generated on first start and kept in
//! the database, so tokens survive restarts and are valid on every replica. The oldest key signs.
//!
//! Generating a 2048-bit key takes 0.1 to 0.6 s here, so on an empty database it happens in the
//! background after the server listens: until it is stored, `/healthz` answers and everything
//! that signs or publishes keys (the token endpoint, `/_dmsync/tokens`, the JWKS) waits for it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
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
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use dmsync_core::identity::SigningKey;
use dmsync_core::{Clock, Store, StoreError};

struct Loaded {
    signing_kid: String,
    encoding: EncodingKey,
    decoding: HashMap<String, DecodingKey>,
    jwks: Vec<Value>,
}

pub struct KeyRing {
    /// `None` only on a first start, until the first key is stored.
    loaded: RwLock<Option<Loaded>>,
    /// True once `loaded` holds a key; it never goes back.
    ready: watch::Sender<bool>,
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

/// How long to wait before trying again when the first key could not be generated or stored.
const FIRST_KEY_RETRY: Duration = Duration::from_secs(1);

impl KeyRing {
    /// Loads the stored keys. On an empty database it returns at once with no key, and a
    /// background task generates the first one, stores it and loads what the database then
    /// holds: replicas starting together may each generate one, only the first insert is kept,
    /// and all of them load that one.
    pub async fn load_or_start_creating(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        shutdown: CancellationToken,
    ) -> Result<Arc<KeyRing>, StoreError> {
        let keys = store.signing_keys().await?;
        let loaded = if keys.is_empty() { None } else { Some(load(&keys)?) };
        let ring = Arc::new(KeyRing {
            ready: watch::Sender::new(loaded.is_some()),
            loaded: RwLock::new(loaded),
            last_reload: RwLock::new(Instant::now()),
        });
        if !ring.is_ready() {
            let creating = ring.clone();
            tokio::spawn(async move { creating.create_first_key(store, clock, shutdown).await });
        }
        Ok(ring)
    }

    async fn create_first_key(&self, store: Arc<dyn Store>, clock: Arc<dyn Clock>, shutdown: CancellationToken) {
        while !self.is_ready() {
            match self.try_create_first_key(store.as_ref(), clock.now()).await {
                Ok(()) => return,
                Err(e) => tracing::error!(error = %e, "could not create the first signing key; retrying"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(FIRST_KEY_RETRY) => {}
            }
        }
    }

    async fn try_create_first_key(&self, store: &dyn Store, now: OffsetDateTime) -> Result<(), StoreError> {
        let key = tokio::task::spawn_blocking(move || generate_key(now))
            .await
            .map_err(|e| StoreError::Database(format!("key generation task: {e}")))??;
        store.insert_first_signing_key(&key).await?;
        let loaded = load(&store.signing_keys().await?)?;
        self.install(loaded);
        Ok(())
    }

    fn install(&self, loaded: Loaded) {
        *self.loaded.write().expect("key ring lock") = Some(loaded);
        self.ready.send_replace(true);
    }

    fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits until a signing key is loaded: at once, except during a first start.
    pub async fn wait_until_ready(&self) {
        let mut ready = self.ready.subscribe();
        // The sender lives as long as `self`, so this ends only when a key is loaded.
        let _ = ready.wait_for(|ready| *ready).await;
    }

    /// Signs with the oldest key. Callers wait with [`Self::wait_until_ready`] first; before a
    /// key exists this is an error.
    pub fn sign<C: Serialize>(&self, claims: &C) -> Result<String, jsonwebtoken::errors::Error> {
        let loaded = self.loaded.read().expect("key ring lock");
        let Some(loaded) = loaded.as_ref() else {
            return Err(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into());
        };
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("JWT".into());
        header.kid = Some(loaded.signing_kid.clone());
        header.x5t = Some(loaded.signing_kid.clone());
        jsonwebtoken::encode(&header, claims, &loaded.encoding)
    }

    pub fn decoding_key(&self, kid: &str) -> Option<DecodingKey> {
        self.loaded.read().expect("key ring lock").as_ref()?.decoding.get(kid).cloned()
    }

    /// Re-reads the keys table, at most once per second, when a token names a `kid` we lack.
    /// While this process is still generating its first key, another replica may already have
    /// stored one and signed tokens with it, so the table is read on every unknown `kid` until a
    /// key is loaded (a fraction of a second).
    pub async fn reload_for_unknown_kid(&self, store: &dyn Store) {
        if self.is_ready() {
            let last = self.last_reload.read().expect("key ring lock");
            if last.elapsed() < RELOAD_INTERVAL {
                return;
            }
        }
        *self.last_reload.write().expect("key ring lock") = Instant::now();
        match store.signing_keys().await {
            // During a first start the table may still be empty; the key is on its way.
            Ok(keys) if keys.is_empty() => {}
            Ok(keys) => match load(&keys) {
                Ok(loaded) => self.install(loaded),
                Err(e) => tracing::warn!(error = %e, "could not reload signing keys"),
            },
            Err(e) => tracing::warn!(error = %e, "could not reload signing keys"),
        }
    }

    /// `{"keys":[…]}` for `/{tenant}/discovery/v2.0/keys`, once a key exists.
    pub async fn jwks(&self) -> Value {
        self.wait_until_ready().await;
        let loaded = self.loaded.read().expect("key ring lock");
        json!({ "keys": loaded.as_ref().map(|l| l.jwks.as_slice()).unwrap_or_default() })
    }
}
