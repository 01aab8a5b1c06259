//! The ledger's vocabulary: what kind of movement a ledger transaction is, and its entries.
//! A decision ([`crate::command::decide`]) returns them; the store writes them.

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
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Deposit, Kind::Withdrawal, Kind::Transfer];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Deposit => "deposit",
            Kind::Withdrawal => "withdrawal",
            Kind::Transfer => "transfer",
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

/// One side of a posting: a wallet (with its balance after) or the external account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub wallet_id: Option<WalletId>,
    /// Signed: credits positive, debits negative.
    pub amount_minor: i64,
    pub balance_after: Option<Money>,
}

impl Entry {
    pub fn wallet(wallet_id: WalletId, amount_minor: i64, balance_after: Money) -> Self {
        Self {
            wallet_id: Some(wallet_id),
            amount_minor,
            balance_after: Some(balance_after),
        }
    }

    pub fn external(amount_minor: i64) -> Self {
        Self {
            wallet_id: None,
            amount_minor,
            balance_after: None,
        }
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
