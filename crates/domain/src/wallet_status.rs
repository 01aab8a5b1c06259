//! A wallet's lifecycle and the commands that move it along.
//!
//! ```text
//! active --freeze---> frozen --close--> closed (final)
//! active <-unfreeze-- frozen
//! active --close----------------------> closed
//! ```
//!
//! Closing also needs a zero balance; the wallet checks that, this table does not.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a wallet is in its lifecycle. Money moves in and out of an active wallet only.
///
/// Stored and sent as the lower-case name (`"active"`, `"frozen"`, `"closed"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WalletStatus {
    /// Open for deposits, withdrawals and transfers.
    Active,
    /// Blocked until unfrozen: no money moves in or out, the balance is kept.
    Frozen,
    /// Final: a closed wallet never reopens. Only an empty wallet can be closed.
    Closed,
}

impl WalletStatus {
    pub const ALL: [WalletStatus; 3] = [
        WalletStatus::Active,
        WalletStatus::Frozen,
        WalletStatus::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WalletStatus::Active => "active",
            WalletStatus::Frozen => "frozen",
            WalletStatus::Closed => "closed",
        }
    }
}

impl fmt::Display for WalletStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown wallet status `{0}` (expected active, frozen or closed)")]
pub struct UnknownWalletStatus(pub String);

impl FromStr for WalletStatus {
    type Err = UnknownWalletStatus;

    /// Parses the lower-case name exactly, so that a status has one spelling everywhere.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        WalletStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownWalletStatus(s.to_owned()))
    }
}

/// A command that changes a wallet's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusAction {
    Freeze,
    Unfreeze,
    Close,
}

impl StatusAction {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusAction::Freeze => "freeze",
            StatusAction::Unfreeze => "unfreeze",
            StatusAction::Close => "close",
        }
    }

    /// The status this action leads to from `from`, or `None` when it is not allowed
    /// (including no-ops such as freezing a frozen wallet). The whole transition table.
    pub fn target(self, from: WalletStatus) -> Option<WalletStatus> {
        use StatusAction::{Close, Freeze, Unfreeze};
        use WalletStatus::{Active, Closed, Frozen};
        match (self, from) {
            (Freeze, Active) => Some(Frozen),
            (Unfreeze, Frozen) => Some(Active),
            (Close, Active | Frozen) => Some(Closed),
            (Freeze, Frozen | Closed) | (Unfreeze, Active | Closed) | (Close, Closed) => None,
        }
    }
}

impl fmt::Display for StatusAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_round_trip_through_str_and_json_and_other_spellings_fail() {
        for status in WalletStatus::ALL {
            assert_eq!(status.as_str().parse::<WalletStatus>(), Ok(status));
            assert_eq!(
                serde_json::to_value(status).expect("serializes"),
                serde_json::json!(status.as_str())
            );
        }
        for wrong in ["Active", "FROZEN", " closed", "open", ""] {
            assert_eq!(
                wrong.parse::<WalletStatus>(),
                Err(UnknownWalletStatus(wrong.to_owned()))
            );
        }
    }

    #[test]
    fn only_the_documented_transitions_are_allowed_and_closed_is_final() {
        use StatusAction::{Close, Freeze, Unfreeze};
        use WalletStatus::{Active, Closed, Frozen};
        let allowed = [
            (Freeze, Active, Frozen),
            (Unfreeze, Frozen, Active),
            (Close, Active, Closed),
            (Close, Frozen, Closed),
        ];
        for action in [Freeze, Unfreeze, Close] {
            for from in WalletStatus::ALL {
                let expected = allowed
                    .iter()
                    .find(|(a, f, _)| *a == action && *f == from)
                    .map(|(_, _, to)| *to);
                assert_eq!(action.target(from), expected, "{action} from {from}");
            }
            assert_eq!(action.target(Closed), None);
        }
    }
}
