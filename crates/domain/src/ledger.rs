//! The ledger's vocabulary: what kind of movement a ledger transaction is, and its entries
//! (each on an account: a wallet's or the external one, its `balance` or its `held`
//! sub-balance, see docs/holds.md). A decision ([`crate::command::decide`]) returns them;
//! the store writes them.

use std::fmt;
use std::str::FromStr;

use crate::ids::WalletId;
use crate::money::Money;

/// What a ledger transaction records (the `kind` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Deposit,
    Withdrawal,
    Transfer,
    /// A hold placed: money moves into the wallet's `held` account.
    Hold,
    /// A hold captured: released from `held`, and the captured part moved out of `balance`.
    Capture,
    /// A hold voided: released from `held`.
    Void,
    /// A hold swept after it expired: released from `held`.
    Expiry,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Deposit,
        Kind::Withdrawal,
        Kind::Transfer,
        Kind::Hold,
        Kind::Capture,
        Kind::Void,
        Kind::Expiry,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Deposit => "deposit",
            Kind::Withdrawal => "withdrawal",
            Kind::Transfer => "transfer",
            Kind::Hold => "hold",
            Kind::Capture => "capture",
            Kind::Void => "void",
            Kind::Expiry => "expiry",
        }
    }
}

/// Which of an owner's two accounts an entry is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Account {
    /// Posted money: what the wallet's `balance` shows.
    Balance,
    /// Money reserved by pending holds.
    Held,
}

impl Account {
    pub fn as_str(self) -> &'static str {
        match self {
            Account::Balance => "balance",
            Account::Held => "held",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown ledger transaction kind `{0}`")]
pub struct UnknownKind(String);

impl FromStr for Kind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

/// One side of a posting: a wallet's account (with its running balance after) or the
/// external account's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub wallet_id: Option<WalletId>,
    pub account: Account,
    /// Signed: credits positive, debits negative.
    pub amount_minor: i64,
    pub balance_after: Option<Money>,
}

impl Entry {
    /// On the wallet's balance.
    pub fn wallet(wallet_id: WalletId, amount_minor: i64, balance_after: Money) -> Self {
        Self {
            wallet_id: Some(wallet_id),
            account: Account::Balance,
            amount_minor,
            balance_after: Some(balance_after),
        }
    }

    /// On the external account's balance.
    pub fn external(amount_minor: i64) -> Self {
        Self {
            wallet_id: None,
            account: Account::Balance,
            amount_minor,
            balance_after: None,
        }
    }

    /// On the wallet's held account, and its counterpart on the external held account:
    /// a hold's reservation (positive) or release (negative).
    pub fn held(wallet_id: WalletId, amount_minor: i64, held_after: Money) -> [Self; 2] {
        [
            Self {
                wallet_id: Some(wallet_id),
                account: Account::Held,
                amount_minor,
                balance_after: Some(held_after),
            },
            Self {
                wallet_id: None,
                account: Account::Held,
                amount_minor: -amount_minor,
                balance_after: None,
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_back_from_their_stored_names_and_nothing_else_reads() {
        for kind in Kind::ALL {
            assert_eq!(kind.as_str().parse::<Kind>(), Ok(kind));
        }
        assert_eq!(
            "Deposit".parse::<Kind>(),
            Err(UnknownKind("Deposit".to_owned()))
        );
    }
}
