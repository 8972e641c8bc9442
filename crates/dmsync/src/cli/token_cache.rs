//! The token cache: one small JSON file per (authority, tenant, client, user) under
//! `$XDG_CACHE_HOME/dmsync/tokens/` (else `~/.cache/dmsync/tokens/`), readable only by its owner.
//! It holds access tokens and their expiry, never a client secret or a password.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// A token is used from the cache only while it has at least this long to live, so that it does
/// not expire between the check and Graph's.
const EXPIRY_MARGIN_SECONDS: i64 = 60;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedToken {
    pub access_token: String,
    /// Unix seconds.
    pub expires_on: i64,
}

/// Which identity a token belongs to. The file name is a hash of it, so a user name never
/// appears in a path.
pub struct CacheKey(String);

impl CacheKey {
    pub fn new(authority: &str, tenant: &str, client_id: &str, username: Option<&str>) -> CacheKey {
        let identity = format!("{authority}\n{}\n{client_id}\n{}", tenant.to_ascii_lowercase(), username.unwrap_or(""));
        let digest = Sha256::digest(identity.as_bytes());
        CacheKey(digest.iter().map(|b| format!("{b:02x}")).collect())
    }
}

pub struct TokenCache {
    dir: PathBuf,
}

impl TokenCache {
    /// `$XDG_CACHE_HOME/dmsync/tokens`, else `$HOME/.cache/dmsync/tokens`; `None` when neither
    /// variable is set, and then nothing is cached.
    pub fn default_location() -> Option<TokenCache> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache")))?;
        Some(TokenCache { dir: base.join("dmsync").join("tokens") })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(format!("{}.json", key.0))
    }

    /// The cached token, if it exists, parses and lives long enough.
    pub fn get(&self, key: &CacheKey, now: OffsetDateTime) -> Option<CachedToken> {
        let bytes = std::fs::read(self.path(key)).ok()?;
        let token: CachedToken = serde_json::from_slice(&bytes).ok()?;
        (token.expires_on - EXPIRY_MARGIN_SECONDS > now.unix_timestamp()).then_some(token)
    }

    /// Writes the token through a private temporary file and a rename, so a reader never sees
    /// half a file and the token is never readable by others, even for a moment.
    pub fn put(&self, key: &CacheKey, token: &CachedToken) -> std::io::Result<()> {
        create_private_dir(&self.dir)?;
        let path = self.path(key);
        let temporary = self.dir.join(format!(".{}.{}.tmp", key.0, std::process::id()));
        let mut file = private_file(&temporary)?;
        file.write_all(&serde_json::to_vec(token).expect("plain struct serialises"))?;
        file.sync_all()?;
        std::fs::rename(&temporary, &path)
    }

    pub fn remove(&self, key: &CacheKey) {
        let _ = std::fs::remove_file(self.path(key));
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_privately_and_expires_with_a_margin() {
        let dir = std::env::temp_dir().join(format!("dmsync-token-cache-{}", std::process::id()));
        let cache = TokenCache { dir: dir.join("tokens") };
        let key = CacheKey::new("http://127.0.0.1:1", "T", "client", Some("user@contoso"));
        let now = OffsetDateTime::now_utc();
        cache.put(&key, &CachedToken { access_token: "abc".into(), expires_on: now.unix_timestamp() + 3600 }).unwrap();
        assert_eq!(cache.get(&key, now).unwrap().access_token, "abc");
        assert!(cache.get(&key, now + time::Duration::seconds(3600 - 30)).is_none(), "within the margin");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(cache.path(&key)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = CacheKey::new("http://127.0.0.1:1", "T", "client", Some("someone-else"));
        assert!(cache.get(&other, now).is_none(), "another user's token is another file");
        cache.remove(&key);
        assert!(cache.get(&key, now).is_none());
        let _ = std::fs::remove_dir_all(dir);
    }
}
