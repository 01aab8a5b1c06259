//! Money: a currency and an exact amount in integer minor units. Never a float.
//!
//! Amounts enter the system as decimal strings (`"10.50"`). They are parsed in two steps:
//! [`DecimalAmount::parse`] checks the grammar without knowing the currency, and
//! [`Money::from_decimal`] checks the amount against the currency's minor-unit scale.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why an amount or currency was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("`{0}` is not an ISO 4217 currency code")]
    UnknownCurrency(String),
    #[error("{0} has no minor unit and cannot hold a wallet balance")]
    UnsupportedCurrency(&'static str),
    #[error(
        "`{0}` is not a decimal amount (expected digits with an optional `.` and fraction, e.g. `10.50`)"
    )]
    NotADecimal(String),
    #[error("{currency} amounts have at most {scale} decimal places")]
    TooManyDecimals { currency: &'static str, scale: u32 },
    #[error("amount is out of range")]
    OutOfRange,
    #[error("cannot combine {left} with {right}")]
    CurrencyMismatch {
        left: &'static str,
        right: &'static str,
    },
}

/// An ISO 4217 currency that has a minor unit (USD: 2 decimals, JPY: 0, BHD: 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    iso: iso_currency::Currency,
    /// Number of decimal places of the minor unit, cached from the ISO table.
    scale: u32,
}

impl Currency {
    /// The three-letter code, e.g. `USD`.
    pub fn code(&self) -> &'static str {
        self.iso.code()
    }

    /// Decimal places of the minor unit.
    pub fn scale(&self) -> u32 {
        self.scale
    }

    /// Every currency a wallet can hold, in code order: each three-letter code that
    /// [`FromStr`] accepts (so a contract that lists them cannot disagree with parsing).
    pub fn supported() -> Vec<Currency> {
        let letters = b'A'..=b'Z';
        letters
            .clone()
            .flat_map(|a| letters.clone().map(move |b| (a, b)))
            .flat_map(|(a, b)| (b'A'..=b'Z').map(move |c| [a, b, c]))
            .filter_map(|code| std::str::from_utf8(&code).ok()?.parse().ok())
            .collect()
    }
}

impl FromStr for Currency {
    type Err = MoneyError;

    /// Parses an upper-case ISO 4217 code. Lower case is rejected so that one currency has
    /// one spelling on the wire.
    fn from_str(code: &str) -> Result<Self, Self::Err> {
        let iso = iso_currency::Currency::from_code(code)
            .ok_or_else(|| MoneyError::UnknownCurrency(code.to_owned()))?;
        let scale = iso
            .exponent()
            .ok_or(MoneyError::UnsupportedCurrency(iso.code()))?;
        Ok(Self {
            iso,
            scale: u32::from(scale),
        })
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl schemars::JsonSchema for Currency {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Currency".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "ISO 4217 code, upper case.",
            "type": "string",
            "pattern": "^[A-Z]{3}$",
            "examples": ["USD"],
        })
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        code.parse().map_err(serde::de::Error::custom)
    }
}

/// A decimal number as written by a client, before its currency is known.
///
/// Grammar: `-?[0-9]+(\.[0-9]+)?`. No sign `+`, no exponent, no spaces, no `NaN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecimalAmount {
    /// All digits as one integer: `10.50` is 1050.
    mantissa: i64,
    /// Digits after the point: `10.50` is 2.
    decimals: u32,
}

impl DecimalAmount {
    /// Parses a decimal string strictly.
    pub fn parse(input: &str) -> Result<Self, MoneyError> {
        let not_decimal = || MoneyError::NotADecimal(input.to_owned());
        let (negative, unsigned) = match input.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, input),
        };
        let (int_part, frac_part) = match unsigned.split_once('.') {
            Some((int_part, frac_part)) => (int_part, Some(frac_part)),
            None => (unsigned, None),
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(int_part) || !frac_part.is_none_or(all_digits) {
            return Err(not_decimal());
        }
        let frac_part = frac_part.unwrap_or("");
        let decimals = u32::try_from(frac_part.len()).map_err(|_| MoneyError::OutOfRange)?;
        // Accumulate as a negative number: i64 has one more negative value than positive.
        let mut mantissa: i64 = 0;
        for digit in int_part.bytes().chain(frac_part.bytes()) {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_sub(i64::from(digit - b'0')))
                .ok_or(MoneyError::OutOfRange)?;
        }
        if !negative {
            mantissa = mantissa.checked_neg().ok_or(MoneyError::OutOfRange)?;
        }
        Ok(Self { mantissa, decimals })
    }
}

/// An exact amount of one currency, in integer minor units (cents for USD).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    currency: Currency,
    minor: i64,
}

impl Money {
    pub fn zero(currency: Currency) -> Self {
        Self { currency, minor: 0 }
    }

    pub fn from_minor(minor: i64, currency: Currency) -> Self {
        Self { currency, minor }
    }

    /// Scales a parsed decimal to the currency's minor units. More decimal places than the
    /// currency has is an error, even when they are zeros: `10.500` is not a USD amount.
    pub fn from_decimal(amount: DecimalAmount, currency: Currency) -> Result<Self, MoneyError> {
        let scale = currency.scale();
        if amount.decimals > scale {
            return Err(MoneyError::TooManyDecimals {
                currency: currency.code(),
                scale,
            });
        }
        let factor = 10_i64
            .checked_pow(scale - amount.decimals)
            .ok_or(MoneyError::OutOfRange)?;
        let minor = amount
            .mantissa
            .checked_mul(factor)
            .ok_or(MoneyError::OutOfRange)?;
        Ok(Self { currency, minor })
    }

    /// Like [`Self::from_decimal`], but digits beyond the currency's scale are accepted
    /// when they are all zeros (`150.5000` is 150.50 USD; `1.0010` is refused): for sums
    /// computed at a fixed wider scale, as the analytics job writes them.
    pub fn from_decimal_trimmed(
        amount: DecimalAmount,
        currency: Currency,
    ) -> Result<Self, MoneyError> {
        let scale = currency.scale();
        if amount.decimals <= scale {
            return Self::from_decimal(amount, currency);
        }
        let divisor = 10_i64
            .checked_pow(amount.decimals - scale)
            .ok_or(MoneyError::OutOfRange)?;
        if amount.mantissa % divisor != 0 {
            return Err(MoneyError::TooManyDecimals {
                currency: currency.code(),
                scale,
            });
        }
        Ok(Self {
            currency,
            minor: amount.mantissa / divisor,
        })
    }

    /// Parses a decimal string in the given currency.
    pub fn parse(input: &str, currency: Currency) -> Result<Self, MoneyError> {
        Self::from_decimal(DecimalAmount::parse(input)?, currency)
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    pub fn minor_units(&self) -> i64 {
        self.minor
    }

    pub fn is_positive(&self) -> bool {
        self.minor > 0
    }

    pub fn is_negative(&self) -> bool {
        self.minor < 0
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let minor = self
            .minor
            .checked_add(other.minor)
            .ok_or(MoneyError::OutOfRange)?;
        Ok(Self { minor, ..self })
    }

    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let minor = self
            .minor
            .checked_sub(other.minor)
            .ok_or(MoneyError::OutOfRange)?;
        Ok(Self { minor, ..self })
    }

    fn same_currency(self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch {
                left: self.currency.code(),
                right: other.currency.code(),
            })
        }
    }

    /// The amount as a decimal string with exactly the currency's scale (`"10.50"`, `"7"` for JPY).
    pub fn to_decimal_string(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scale = self.currency.scale();
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        if scale == 0 {
            return write!(f, "{sign}{abs}");
        }
        let factor = 10_u64.pow(scale);
        let width = scale as usize;
        write!(f, "{sign}{}.{:0width$}", abs / factor, abs % factor)
    }
}

/// Wire form of money inside events: `{"value": "10.50", "currency": "USD"}`.
#[derive(Serialize, Deserialize)]
struct MoneyWire {
    value: String,
    currency: Currency,
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        MoneyWire {
            value: self.to_string(),
            currency: self.currency,
        }
        .serialize(serializer)
    }
}

/// The JSON Schema of the wire form: the decimal string in the currency's scale (no
/// exponent, no `+`) and the upper-case ISO 4217 code.
impl schemars::JsonSchema for Money {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Money".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "An amount: a decimal string with exactly the currency's decimal places, and the currency.",
            "type": "object",
            "properties": {
                "value": {
                    "type": "string",
                    "pattern": "^-?[0-9]+(\\.[0-9]+)?$",
                    "examples": ["10.50"],
                },
                "currency": generator.subschema_for::<Currency>(),
            },
            "required": ["value", "currency"],
        })
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = MoneyWire::deserialize(deserializer)?;
        Money::parse(&wire.value, wire.currency).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn supported_currencies_are_exactly_the_codes_that_parse() {
        let codes: Vec<&str> = Currency::supported().iter().map(Currency::code).collect();
        assert!(codes.contains(&"USD") && codes.contains(&"JPY") && codes.contains(&"BHD"));
        assert!(!codes.contains(&"XAU"), "no minor unit, no wallet");
        assert!(
            codes.windows(2).all(|w| w[0] < w[1]),
            "sorted, no duplicates"
        );
    }

    fn usd() -> Currency {
        "USD".parse().expect("USD is ISO 4217")
    }

    fn jpy() -> Currency {
        "JPY".parse().expect("JPY is ISO 4217")
    }

    #[test]
    fn usd_amounts_parse_to_cents() {
        assert_eq!(
            Money::parse("10.50", usd()).map(|m| m.minor_units()),
            Ok(1050)
        );
        assert_eq!(
            Money::parse("10.5", usd()).map(|m| m.minor_units()),
            Ok(1050)
        );
        assert_eq!(Money::parse("10", usd()).map(|m| m.minor_units()), Ok(1000));
        assert_eq!(Money::parse("0.01", usd()).map(|m| m.minor_units()), Ok(1));
        assert_eq!(
            Money::parse("-3.20", usd()).map(|m| m.minor_units()),
            Ok(-320)
        );
    }

    #[test]
    fn more_decimals_than_the_currency_has_are_rejected_even_zeros() {
        for input in ["10.001", "10.500", "0.000"] {
            assert_eq!(
                Money::parse(input, usd()),
                Err(MoneyError::TooManyDecimals {
                    currency: "USD",
                    scale: 2
                }),
                "{input}"
            );
        }
        assert!(Money::parse("10", jpy()).is_ok());
        assert!(matches!(
            Money::parse("10.5", jpy()),
            Err(MoneyError::TooManyDecimals { scale: 0, .. })
        ));
    }

    #[test]
    fn non_decimal_strings_are_rejected() {
        for input in [
            "", " 10", "10 ", "+10", "1e2", "NaN", "inf", "10.", ".5", "1,00", "--1", "0x10", "١٠",
            "10.5.1", "-",
        ] {
            assert!(
                matches!(DecimalAmount::parse(input), Err(MoneyError::NotADecimal(_))),
                "{input:?} should not parse"
            );
        }
    }

    #[test]
    fn amounts_beyond_i64_are_out_of_range_not_wrapped() {
        assert_eq!(
            DecimalAmount::parse("9223372036854775808"),
            Err(MoneyError::OutOfRange)
        );
        // Fits as a mantissa but not once scaled to cents.
        assert_eq!(
            Money::parse("92233720368547758.07", usd()).map(|m| m.minor_units()),
            Ok(i64::MAX)
        );
        assert_eq!(
            Money::parse("92233720368547759", usd()),
            Err(MoneyError::OutOfRange)
        );
    }

    #[test]
    fn display_uses_exactly_the_currency_scale() {
        assert_eq!(Money::from_minor(1050, usd()).to_string(), "10.50");
        assert_eq!(Money::from_minor(5, usd()).to_string(), "0.05");
        assert_eq!(Money::from_minor(-5, usd()).to_string(), "-0.05");
        assert_eq!(Money::from_minor(0, usd()).to_string(), "0.00");
        assert_eq!(Money::from_minor(7, jpy()).to_string(), "7");
        let bhd: Currency = "BHD".parse().expect("BHD is ISO 4217");
        assert_eq!(Money::from_minor(1, bhd).to_string(), "0.001");
    }

    #[test]
    fn unknown_lowercase_and_unitless_currencies_are_rejected() {
        assert!(matches!(
            "XYZ".parse::<Currency>(),
            Err(MoneyError::UnknownCurrency(_))
        ));
        assert!(matches!(
            "usd".parse::<Currency>(),
            Err(MoneyError::UnknownCurrency(_))
        ));
        assert!(matches!(
            "XAU".parse::<Currency>(),
            Err(MoneyError::UnsupportedCurrency("XAU"))
        ));
    }

    #[test]
    fn arithmetic_is_checked_and_currency_safe() {
        let max = Money::from_minor(i64::MAX, usd());
        assert_eq!(
            max.checked_add(Money::from_minor(1, usd())),
            Err(MoneyError::OutOfRange)
        );
        assert!(matches!(
            Money::zero(usd()).checked_add(Money::zero(jpy())),
            Err(MoneyError::CurrencyMismatch { .. })
        ));
        assert_eq!(
            Money::from_minor(500, usd()).checked_sub(Money::from_minor(200, usd())),
            Ok(Money::from_minor(300, usd()))
        );
    }

    #[test]
    fn money_json_round_trips() {
        let money = Money::from_minor(1050, usd());
        let json = serde_json::to_value(money).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({"value": "10.50", "currency": "USD"})
        );
        assert_eq!(serde_json::from_value::<Money>(json).ok(), Some(money));
    }

    proptest! {
        #[test]
        fn display_then_parse_is_identity(minor in any::<i64>(), code in prop::sample::select(vec!["USD", "JPY", "BHD", "EUR"])) {
            let currency: Currency = code.parse().expect("listed codes are ISO 4217");
            let money = Money::from_minor(minor, currency);
            prop_assert_eq!(Money::parse(&money.to_string(), currency), Ok(money));
        }
    }
}
