//! What the analytics job (Apache Flink, `analytics/`) derives from the movement events and
//! sends back: the volume of one currency in one minute, and a wallet whose outgoing
//! movements crossed the velocity limit.
//!
//! The job sums exact decimals (`DECIMAL(38, 4)`, never floats) and writes each sum as a
//! decimal string; [`VolumeTotal::money`] turns it into the currency's minor units, refusing
//! any digit the currency cannot hold.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::events::EventMetadata;
use crate::ids::WalletId;
use crate::money::{Currency, DecimalAmount, Money, MoneyError};

/// How many movements of one kind, and their sum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VolumeTotal {
    pub count: u64,
    /// The exact sum as a decimal string; digits beyond the currency's scale are zeros.
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?$"))]
    pub amount: String,
}

impl VolumeTotal {
    /// The sum in `currency`: an error when it is not a decimal, or has a non-zero digit
    /// beyond the currency's scale, or does not fit.
    pub fn money(&self, currency: Currency) -> Result<Money, MoneyError> {
        Money::from_decimal_trimmed(DecimalAmount::parse(&self.amount)?, currency)
    }
}

/// The volume of one currency in one minute of event time (the events' `ce_time`):
/// deposits, withdrawals and transfers, each counted and summed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VolumeComputed {
    #[serde(flatten)]
    pub metadata: EventMetadata,
    /// The minute's first instant (UTC, whole minute).
    pub minute: DateTime<Utc>,
    pub currency: Currency,
    pub deposits: VolumeTotal,
    pub withdrawals: VolumeTotal,
    pub transfers: VolumeTotal,
}

/// A wallet's outgoing movements (withdrawals and transfers out) in a sliding window
/// crossed the velocity limit (a count or an amount). Sent once per crossing: the first
/// window over the limit after one that was not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VelocityExceeded {
    #[serde(flatten)]
    pub metadata: EventMetadata,
    pub wallet_id: WalletId,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub currency: Currency,
    /// Outgoing movements in the window.
    pub count: u64,
    /// Their sum, a decimal string (digits beyond the currency's scale are zeros).
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?$"))]
    pub amount: String,
    /// The limits in force: at least this many movements, or at least this amount.
    pub max_count: u64,
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?$"))]
    pub max_amount: String,
}

impl VelocityExceeded {
    /// The window's sum in the wallet's currency.
    pub fn amount(&self) -> Result<Money, MoneyError> {
        Money::from_decimal_trimmed(DecimalAmount::parse(&self.amount)?, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd() -> Currency {
        "USD".parse().expect("USD")
    }

    #[test]
    fn a_sum_with_zeros_beyond_the_scale_is_exact_minor_units() {
        let total = VolumeTotal {
            count: 2,
            amount: "150.5000".to_owned(),
        };
        assert_eq!(total.money(usd()), Ok(Money::from_minor(15050, usd())));
    }

    #[test]
    fn a_sum_with_a_digit_the_currency_cannot_hold_is_refused() {
        let total = VolumeTotal {
            count: 1,
            amount: "1.0010".to_owned(),
        };
        assert!(total.money(usd()).is_err());
        let total = VolumeTotal {
            count: 1,
            amount: "1e3".to_owned(),
        };
        assert!(total.money(usd()).is_err());
    }
}
