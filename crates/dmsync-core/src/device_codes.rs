//! The device authorization grant (RFC 8628) as Entra ID runs it: a device code the client
//! polls with, a short user code a person types on the verification page, and the state the
//! sign-in moves it through. The rules of a poll live here; the store keeps the rows and makes
//! each step atomic, and the server speaks the protocol.

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::TenantId;

/// How long a device code and its user code are good for: Entra's `expires_in`, 15 minutes.
pub const DEVICE_CODE_LIFETIME: Duration = Duration::seconds(900);

/// The least time between two polls of one device code: Entra's `interval`.
pub const POLL_INTERVAL: Duration = Duration::seconds(5);

/// The least time between two answered polls that the server enforces: the interval less a
/// second, since requests sent `interval` apart can arrive closer together, and MSAL allows
/// itself the same second of skew.
pub const MIN_POLL_SPACING: Duration = Duration::seconds(4);

/// How long an expired code is kept, so that a client still polling hears `expired_token`
/// rather than that the code is unknown. Stores remove older ones lazily.
pub const EXPIRED_CODES_KEPT_FOR: Duration = Duration::hours(1);

/// Where a device code's sign-in is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceCodeState {
    /// Nobody has entered the user code yet.
    Pending,
    /// The user signed in (or the admin API signed them in); the next poll gets their tokens.
    Approved(ApprovedUser),
    /// The user cancelled on the verification page (or the admin API declined).
    Declined,
    /// The tokens were issued; a device code is redeemed once.
    Redeemed,
}

impl DeviceCodeState {
    /// The name the store keeps the state under.
    pub fn as_str(&self) -> &'static str {
        match self {
            DeviceCodeState::Pending => "pending",
            DeviceCodeState::Approved { .. } => "approved",
            DeviceCodeState::Declined => "declined",
            DeviceCodeState::Redeemed => "redeemed",
        }
    }
}

/// One device authorization request. The device code itself is a bearer secret, so only its
/// hash is kept: a copy of the database cannot be polled with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCode {
    /// SHA-256 of the device code, hex.
    pub device_code_hash: String,
    /// What the person types: upper-case letters and digits, unique among live codes.
    pub user_code: String,
    /// The tenant the request named; `None` for `organizations` and `common`, where the user's
    /// domain picks the tenant at sign-in.
    pub tenant_id: Option<TenantId>,
    pub client_id: String,
    /// The `scope` the client asked for, as it was sent.
    pub scope: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// The last poll that was answered (not one refused with `slow_down`).
    pub last_polled_at: Option<OffsetDateTime>,
    pub state: DeviceCodeState,
}

impl DeviceCode {
    /// A new pending code, dated by the Clock's `now`.
    pub fn new(
        device_code_hash: String,
        user_code: String,
        tenant_id: Option<TenantId>,
        client_id: String,
        scope: String,
        now: OffsetDateTime,
    ) -> DeviceCode {
        DeviceCode {
            device_code_hash,
            user_code,
            tenant_id,
            client_id,
            scope,
            created_at: now,
            expires_at: now + DEVICE_CODE_LIFETIME,
            last_polled_at: None,
            state: DeviceCodeState::Pending,
        }
    }

    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        now >= self.expires_at
    }
}

/// The user who approved a code: found again by UPN at redemption, and refused if the object
/// under that name is no longer the one that signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovedUser {
    pub tenant_id: TenantId,
    pub object_id: Uuid,
    pub user_principal_name: String,
}

/// What the person at the verification page (or the admin API) decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceCodeDecision {
    Approve(ApprovedUser),
    Decline,
}

/// A poll as the store saw it: the row before the poll, and whether the poll came sooner than
/// [`POLL_INTERVAL`] after the last answered one (then it was not recorded).
#[derive(Debug, Clone)]
pub struct DevicePoll {
    pub code: DeviceCode,
    pub too_soon: bool,
}

/// The answer to a poll, before any token is minted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollAnswer {
    Pending,
    SlowDown,
    Expired,
    Declined,
    /// Redeemed already: a device code gives its tokens once.
    AlreadyRedeemed,
    /// Issue the user's tokens, if the redemption wins (see the store's `redeem_device_code`).
    Approved(ApprovedUser),
}

impl DevicePoll {
    /// The answer: an expired code is expired whatever its state, since the client must start
    /// again; a poll too soon is told to slow down before it learns anything else.
    pub fn answer(&self, now: OffsetDateTime) -> PollAnswer {
        if self.code.state == DeviceCodeState::Redeemed {
            return PollAnswer::AlreadyRedeemed;
        }
        if self.code.is_expired(now) {
            return PollAnswer::Expired;
        }
        if self.too_soon {
            return PollAnswer::SlowDown;
        }
        match &self.code.state {
            DeviceCodeState::Pending => PollAnswer::Pending,
            DeviceCodeState::Declined => PollAnswer::Declined,
            DeviceCodeState::Redeemed => PollAnswer::AlreadyRedeemed,
            DeviceCodeState::Approved(user) => PollAnswer::Approved(user.clone()),
        }
    }
}

/// The alphabet of user codes: upper-case letters and digits without the ones people mistake
/// for each other (0 and O, 1 and I).
pub const USER_CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// The length of a user code, as Entra's.
pub const USER_CODE_LENGTH: usize = 9;

/// A user code as typed, made comparable: upper case, without spaces or dashes. `None` for
/// anything that cannot be a user code, so that no lookup is made for it.
pub fn normalize_user_code(typed: &str) -> Option<String> {
    if typed.len() > 64 {
        return None;
    }
    let code: String =
        typed.chars().filter(|c| !c.is_whitespace() && *c != '-').map(|c| c.to_ascii_uppercase()).collect();
    let valid = code.len() == USER_CODE_LENGTH && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b));
    valid.then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(state: DeviceCodeState) -> DeviceCode {
        let now = OffsetDateTime::UNIX_EPOCH;
        let mut code = DeviceCode::new("h".into(), "ABCDEFGHJ".into(), None, "c".into(), "openid".into(), now);
        code.state = state;
        code
    }

    #[test]
    fn expiry_wins_over_everything_but_redemption() {
        let start = OffsetDateTime::UNIX_EPOCH;
        let late = start + DEVICE_CODE_LIFETIME;
        let approved = DeviceCodeState::Approved(ApprovedUser {
            tenant_id: TenantId::new(),
            object_id: Uuid::nil(),
            user_principal_name: "a@b".into(),
        });
        for state in [DeviceCodeState::Pending, DeviceCodeState::Declined, approved.clone()] {
            let poll = DevicePoll { code: code(state), too_soon: true };
            assert_eq!(poll.answer(late), PollAnswer::Expired);
            assert_eq!(poll.answer(start), PollAnswer::SlowDown);
        }
        let poll = DevicePoll { code: code(DeviceCodeState::Redeemed), too_soon: false };
        assert_eq!(poll.answer(late), PollAnswer::AlreadyRedeemed);
        let poll = DevicePoll { code: code(DeviceCodeState::Declined), too_soon: false };
        assert_eq!(poll.answer(start), PollAnswer::Declined);
    }

    #[test]
    fn user_codes_are_read_as_people_type_them() {
        assert_eq!(normalize_user_code("abcd-efgh j").as_deref(), Some("ABCDEFGHJ"));
        assert_eq!(normalize_user_code("ABCDEFGH0"), None, "0 is not in the alphabet");
        assert_eq!(normalize_user_code("ABCDEFGH"), None, "too short");
        assert_eq!(normalize_user_code(&"A".repeat(10_000)), None);
        assert_eq!(normalize_user_code("ÄBCDEFGHJ"), None);
    }
}
