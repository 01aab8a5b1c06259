//! Holds: money reserved in a wallet now, captured (all or part), voided or expired later
//! (docs/holds.md). A [`Hold`] is its state; the commands on it are judged by
//! [`crate::command::decide`], which reserves and releases through the wallet's `held`
//! ledger account.
//!
//! Expiry is exact: a pending hold past `expires_at` is released from that instant on
//! ([`Hold::status_at`], [`Hold::reserves_at`]), whether or not the sweeper has recorded it.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};

use crate::ids::{HoldId, WalletId};
use crate::money::Money;

/// The longest a hold may last.
pub const MAX_HOLD_SECONDS: u32 = 30 * 24 * 60 * 60;
/// A hold's description: at most this many characters.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// Where a hold stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HoldStatus {
    /// Reserving its amount, until `expires_at`.
    Pending,
    Captured,
    Voided,
    Expired,
}

impl HoldStatus {
    pub const ALL: [HoldStatus; 4] = [
        HoldStatus::Pending,
        HoldStatus::Captured,
        HoldStatus::Voided,
        HoldStatus::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HoldStatus::Pending => "pending",
            HoldStatus::Captured => "captured",
            HoldStatus::Voided => "voided",
            HoldStatus::Expired => "expired",
        }
    }
}

impl fmt::Display for HoldStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown hold status `{0}`")]
pub struct UnknownHoldStatus(pub String);

impl FromStr for HoldStatus {
    type Err = UnknownHoldStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HoldStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownHoldStatus(s.to_owned()))
    }
}

/// When a new hold ends, as the client said it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// This many seconds after the decision.
    In(u32),
    At(DateTime<Utc>),
}

impl Expiry {
    /// The instant a hold decided at `now` expires, if it is later than `now` and at most
    /// [`MAX_HOLD_SECONDS`] after it.
    pub fn resolve(self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let at = match self {
            Expiry::In(seconds) => now + Duration::seconds(i64::from(seconds)),
            Expiry::At(at) => at,
        };
        (at > now && at <= now + Duration::seconds(i64::from(MAX_HOLD_SECONDS))).then_some(at)
    }
}

/// A hold as it is stored: `status` is what was recorded (a pending hold past `expires_at`
/// stays `Pending` until the sweeper records it; see [`Hold::status_at`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub id: HoldId,
    pub wallet_id: WalletId,
    /// Where a capture sends the money; `None`: out of the wallet, as a withdrawal.
    pub to_wallet_id: Option<WalletId>,
    pub amount: Money,
    /// What a capture took (at most `amount`; the rest was released).
    pub captured: Option<Money>,
    pub status: HoldStatus,
    pub description: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// When it was captured, voided or recorded as expired.
    pub closed_at: Option<DateTime<Utc>>,
}

impl Hold {
    /// Its status at `at`: a pending hold is expired from `expires_at` on.
    pub fn status_at(&self, at: DateTime<Utc>) -> HoldStatus {
        match self.status {
            HoldStatus::Pending if self.expires_at <= at => HoldStatus::Expired,
            status => status,
        }
    }

    /// Whether it reserves its amount at `at`.
    pub fn reserves_at(&self, at: DateTime<Utc>) -> bool {
        self.status_at(at) == HoldStatus::Pending
    }

    /// Its version (its `ETag`): 1 while pending, 2 once closed.
    pub fn version(&self) -> i64 {
        match self.status {
            HoldStatus::Pending => 1,
            HoldStatus::Captured | HoldStatus::Voided | HoldStatus::Expired => 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(expires_at: DateTime<Utc>) -> Hold {
        let usd = "USD".parse().expect("USD");
        Hold {
            id: HoldId::new(),
            wallet_id: WalletId::new(),
            to_wallet_id: None,
            amount: Money::from_minor(100, usd),
            captured: None,
            status: HoldStatus::Pending,
            description: None,
            expires_at,
            created_at: expires_at - Duration::seconds(10),
            closed_at: None,
        }
    }

    #[test]
    fn a_pending_hold_is_expired_from_the_instant_of_its_expiry_on() {
        let at = Utc::now();
        let hold = hold(at);
        assert_eq!(
            hold.status_at(at - Duration::microseconds(1)),
            HoldStatus::Pending
        );
        assert!(hold.reserves_at(at - Duration::microseconds(1)));
        assert_eq!(hold.status_at(at), HoldStatus::Expired);
        assert!(!hold.reserves_at(at));
        let voided = Hold {
            status: HoldStatus::Voided,
            ..hold
        };
        assert_eq!(voided.status_at(at), HoldStatus::Voided);
    }

    #[test]
    fn an_expiry_is_later_than_now_and_at_most_thirty_days_ahead() {
        let now = Utc::now();
        assert_eq!(Expiry::In(0).resolve(now), None);
        assert_eq!(Expiry::In(1).resolve(now), Some(now + Duration::seconds(1)));
        assert!(Expiry::In(MAX_HOLD_SECONDS).resolve(now).is_some());
        assert_eq!(Expiry::In(MAX_HOLD_SECONDS + 1).resolve(now), None);
        assert_eq!(Expiry::At(now).resolve(now), None);
        assert_eq!(Expiry::At(now - Duration::seconds(1)).resolve(now), None);
    }

    #[test]
    fn statuses_read_back_from_their_names_and_nothing_else_reads() {
        for status in HoldStatus::ALL {
            assert_eq!(status.as_str().parse::<HoldStatus>(), Ok(status));
        }
        assert!("Pending".parse::<HoldStatus>().is_err());
    }
}
