//! Keys of an external issuer (a real Entra ID tenant), fetched from its JWKS URL. The cache
//! follows Entra's key-rollover guidance: keyed by `kid`, refreshed at start and every hour in
//! the background, refreshed on an unknown `kid` but not more than once every five minutes (so a
//! stream of forged kids cannot turn into a stream of fetches), and the last good set kept when a
//! refresh fails.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::JwkSet;
use tokio_util::sync::CancellationToken;

use crate::config::ExternalIssuer;

pub const UNKNOWN_KID_REFRESH_INTERVAL: Duration = Duration::from_secs(300);
pub const BACKGROUND_REFRESH_INTERVAL: Duration = Duration::from_secs(3600);

pub struct ExternalKeys {
    pub config: ExternalIssuer,
    http: reqwest::Client,
    keys: RwLock<HashMap<String, DecodingKey>>,
    /// When an unknown kid last caused a fetch on the request path.
    last_on_demand: Mutex<Option<Instant>>,
}

impl ExternalKeys {
    pub fn new(config: ExternalIssuer) -> ExternalKeys {
        let http =
            reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("a plain reqwest client builds");
        ExternalKeys { config, http, keys: RwLock::new(HashMap::new()), last_on_demand: Mutex::new(None) }
    }

    /// Fetches the JWKS and replaces the cache. On failure the previous keys stay.
    pub async fn refresh(&self) -> Result<usize, String> {
        let set: JwkSet = self
            .http
            .get(&self.config.jwks_url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("fetching {}: {e}", self.config.jwks_url))?
            .json()
            .await
            .map_err(|e| format!("parsing {}: {e}", self.config.jwks_url))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            if let (Some(kid), Ok(key)) = (jwk.common.key_id.clone(), DecodingKey::from_jwk(jwk)) {
                keys.insert(kid, key);
            }
        }
        let count = keys.len();
        *self.keys.write().expect("jwks lock") = keys;
        Ok(count)
    }

    /// The key for `kid`, refreshing once if it is unknown and the last attempt is old enough.
    pub async fn key(&self, kid: &str) -> Option<DecodingKey> {
        if let Some(k) = self.keys.read().expect("jwks lock").get(kid) {
            return Some(k.clone());
        }
        let may_refresh = {
            let mut last = self.last_on_demand.lock().expect("jwks lock");
            let due = last.is_none_or(|t| t.elapsed() >= UNKNOWN_KID_REFRESH_INTERVAL);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if may_refresh && let Err(e) = self.refresh().await {
            tracing::warn!(error = %e, "external JWKS refresh failed; keeping the last good keys");
        }
        self.keys.read().expect("jwks lock").get(kid).cloned()
    }

    /// Refreshes every hour until shutdown.
    pub async fn refresh_periodically(&self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(BACKGROUND_REFRESH_INTERVAL) => {
                    if let Err(e) = self.refresh().await {
                        tracing::warn!(error = %e, "external JWKS refresh failed; keeping the last good keys");
                    }
                }
            }
        }
    }
}
