use thiserror::Error;

/// What a storage operation can report. Domain outcomes that a caller must branch on (a sync
/// refused with 409 or 429, a conflicting registration) are ordinary return values, not errors.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The database failed or is unreachable. The text is for logs only, never for the wire.
    #[error("database error: {0}")]
    Database(String),
    /// No database connection became free in time (on SQLite, the one writer stayed busy). The
    /// request may succeed later; the text is for logs only.
    #[error("database busy: {0}")]
    Busy(String),
    /// The request carried text the database cannot hold (PostgreSQL's `text` refuses U+0000);
    /// the client's fault, not the server's. The text is for logs only.
    #[error("value cannot be stored: {0}")]
    Unstorable(String),
}

pub type StoreResult<T> = Result<T, StoreError>;
