//! The grammar of request values, stated once: each rule here is both the schema the OpenAPI
//! document shows (used with `schema_with`) and what the server checks, so a value the
//! document calls valid is one the server reads, and a value it calls invalid is refused.
//!
//! - Amounts: positive decimal strings without a sign, exponent or leading zeros, with at
//!   most as many decimal places as the currency with the most has, and few enough integer
//!   digits that no currency's minor units overflow. Checked here with the same regex.
//! - Names (users, wallets): the domain's rule (1 to 100 characters, not blank, no control
//!   characters) written as a pattern; a test holds the two together.
//! - Currencies: the ISO 4217 codes the domain accepts, listed as an enum.
//! - Cursors: the item ids this API hands out as `next_cursor` (lower-case UUIDs).
//! - `Idempotency-Key`: 1 to 255 visible ASCII characters.
//!
//! What depends on state cannot be in a schema and is answered 422 with its own type: an
//! amount with more decimal places than *this* wallet's currency, a balance that would
//! overflow (`amount-not-representable`), insufficient funds, and so on.

use std::sync::LazyLock;

use domain::{Currency, DecimalAmount, Email, WalletName};
use regex::Regex;
use utoipa::openapi::schema::{ObjectBuilder, SchemaFormat, SchemaType, Type};
use utoipa::openapi::{KnownFormat, Object};

use crate::error::ApiError;

/// The amount pattern and its compiled form.
static AMOUNT: LazyLock<(String, Regex)> = LazyLock::new(|| {
    let pattern = amount_pattern();
    let regex = Regex::new(&pattern).expect("the amount pattern compiles");
    (pattern, regex)
});

/// Decimal places of the currency with the most (4: CLF, UYW).
fn max_scale() -> u32 {
    Currency::supported()
        .iter()
        .map(Currency::scale)
        .max()
        .unwrap_or(0)
}

/// `^(?:[1-9][0-9]{0,13}(?:\.[0-9]{1,4})?|0\.(?:[1-9][0-9]{0,3}|0[1-9][0-9]{0,2}|...))$`:
/// positive, canonical, at most `max_scale` decimals, and at most `18 - max_scale` integer
/// digits, so every amount fits an `i64` of minor units in every currency.
fn amount_pattern() -> String {
    let scale = max_scale();
    let integer_digits = i64::MAX.ilog10() - scale;
    let fractions: Vec<String> = (0..scale)
        .map(|zeros| {
            format!(
                "{}[1-9][0-9]{{0,{}}}",
                "0".repeat(zeros as usize),
                scale - 1 - zeros
            )
        })
        .collect();
    let fraction = if scale == 0 {
        String::new()
    } else {
        format!("(?:\\.[0-9]{{1,{scale}}})?")
    };
    let below_one = if scale == 0 {
        String::new()
    } else {
        format!("|0\\.(?:{})", fractions.join("|"))
    };
    format!(
        "^(?:[1-9][0-9]{{0,{}}}{fraction}{below_one})$",
        integer_digits - 1
    )
}

/// An amount of a request: its grammar (422 `validation-error` when the document would call
/// it invalid); the currency's scale is checked later, against the wallet.
pub(crate) fn amount(text: &str) -> Result<DecimalAmount, ApiError> {
    if !AMOUNT.1.is_match(text) {
        return Err(ApiError::Validation(format!(
            "amount: `{text}` is not a positive decimal amount such as `10.50` (no sign, \
             exponent or leading zeros; at most {} decimal places)",
            max_scale()
        )));
    }
    DecimalAmount::parse(text).map_err(|e| ApiError::Validation(format!("amount: {e}")))
}

pub(crate) fn amount_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .pattern(Some(AMOUNT.0.clone()))
        .description(Some(
            "A positive decimal string, e.g. `\"10.50\"`, with at most the currency's decimal \
             places (more: 422 `amount-not-representable`).",
        ))
        .examples(["10.50"])
        .build()
}

/// Characters a name may not hold anywhere: the control characters (`char::is_control`).
const CONTROL: &str = r"\x00-\x1f\x7f-\x9f";
/// What makes a name blank besides controls: Unicode `White_Space` (`char::is_whitespace`).
const SPACE: &str = r"\x20\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// A display name (users, wallets): 1 to 100 characters, at least one of them not
/// whitespace, none a control character.
fn name_pattern() -> String {
    format!("^[^{CONTROL}]*[^{CONTROL}{SPACE}][^{CONTROL}]*$")
}

pub(crate) fn name_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .min_length(Some(1))
        .max_length(Some(WalletName::MAX_CHARS))
        .pattern(Some(name_pattern()))
        .build()
}

pub(crate) fn email_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
        .min_length(Some(3))
        .max_length(Some(Email::MAX_CHARS))
        .build()
}

pub(crate) fn currency_schema() -> Object {
    let codes: Vec<&str> = Currency::supported().iter().map(Currency::code).collect();
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .description(Some(
            "ISO 4217 code, upper case, of a currency with a minor unit.",
        ))
        .enum_values(Some(codes))
        .examples(["USD"])
        .build()
}

/// `Idempotency-Key`: 1 to 255 visible ASCII characters.
const IDEMPOTENCY_KEY_PATTERN: &str = "^[!-~]{1,255}$";
static IDEMPOTENCY_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(IDEMPOTENCY_KEY_PATTERN).expect("the Idempotency-Key pattern compiles")
});

/// A JSON integer as JSON Schema counts them: `395` and `395.0` alike (a number whose
/// fraction is zero is an integer there), within `u32`. For integer fields of bodies.
pub(crate) fn whole_number<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<u32, D::Error> {
    let number = <serde_json::Number as serde::Deserialize>::deserialize(deserializer)?;
    let whole = match number.as_u64() {
        Some(n) => Some(n),
        None => number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= f64::from(u32::MAX))
            .map(|f| f as u64),
    };
    whole.and_then(|n| u32::try_from(n).ok()).ok_or_else(|| {
        serde::de::Error::custom(format!("{number} is not a whole number of seconds"))
    })
}

/// An `Idempotency-Key` header's value: 400 unless the document would call it valid.
pub(crate) fn idempotency_key(text: &str) -> Result<&str, ApiError> {
    if IDEMPOTENCY_KEY.is_match(text) {
        Ok(text)
    } else {
        Err(ApiError::MalformedRequest(
            "Idempotency-Key must be 1 to 255 visible ASCII characters".to_owned(),
        ))
    }
}

pub(crate) fn idempotency_key_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .min_length(Some(1))
        .max_length(Some(255))
        .pattern(Some(IDEMPOTENCY_KEY_PATTERN))
        .build()
}

/// The cursors this API hands out: the id of an item, as a lower-case hyphenated UUID.
const CURSOR_PATTERN: &str = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";
static CURSOR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(CURSOR_PATTERN).expect("the cursor pattern compiles"));

/// A `cursor` query parameter: 400 unless it is one this API could have returned.
pub(crate) fn cursor(text: &str) -> Result<uuid::Uuid, ApiError> {
    let malformed = || ApiError::MalformedRequest("cursor is not one this API returned".to_owned());
    if !CURSOR.is_match(text) {
        return Err(malformed());
    }
    text.parse().map_err(|_| malformed())
}

pub(crate) fn cursor_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .pattern(Some(CURSOR_PATTERN))
        .description(Some("`next_cursor` of the previous page (an item's id)."))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_number_is_one_json_schema_calls_an_integer_within_u32() {
        let read = |json: &str| {
            let mut deserializer = serde_json::Deserializer::from_str(json);
            whole_number(&mut deserializer).ok()
        };
        assert_eq!(read("395"), Some(395));
        assert_eq!(read("395.0"), Some(395));
        assert_eq!(read("4294967295"), Some(u32::MAX));
        for refused in ["395.5", "-1", "4294967296", "1e100", "\"395\""] {
            assert_eq!(read(refused), None, "{refused}");
        }
    }

    #[test]
    fn the_amount_pattern_bounds_digits_by_the_largest_scale() {
        assert_eq!(max_scale(), 4);
        assert_eq!(
            AMOUNT.0,
            "^(?:[1-9][0-9]{0,13}(?:\\.[0-9]{1,4})?|0\\.(?:[1-9][0-9]{0,3}|0[1-9][0-9]{0,2}|\
             00[1-9][0-9]{0,1}|000[1-9][0-9]{0,0}))$"
        );
        for valid in ["1", "10.50", "0.1", "0.0001", "99999999999999.9999", "7.0"] {
            assert!(amount(valid).is_ok(), "{valid}");
        }
        for invalid in [
            "",
            "0",
            "0.0",
            "-1",
            "+1",
            "01",
            "1.",
            ".5",
            "1e3",
            " 1",
            "1.23456",
            "0.00001",
            "100000000000000",
            "NaN",
        ] {
            assert!(amount(invalid).is_err(), "{invalid:?}");
        }
    }

    #[test]
    fn every_pattern_amount_fits_every_currency() {
        let largest = amount("99999999999999.9999").expect("valid");
        for currency in Currency::supported() {
            if currency.scale() == max_scale() {
                assert!(domain::Money::from_decimal(largest, currency).is_ok());
            }
        }
    }

    #[test]
    fn the_name_pattern_is_the_domain_rule() {
        let pattern = Regex::new(&name_pattern()).expect("compiles");
        let accepts = |name: &str| {
            pattern.is_match(name) && (1..=WalletName::MAX_CHARS).contains(&name.chars().count())
        };
        let mut samples: Vec<String> = ["", " ", "a", " a ", "\u{3000}", "é"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        samples.push("x".repeat(100));
        samples.push("x".repeat(101));
        for c in (0..0x3100).filter_map(char::from_u32) {
            samples.push(c.to_string());
            samples.push(format!("a{c}"));
        }
        for name in samples {
            assert_eq!(
                accepts(&name),
                WalletName::parse(&name).is_ok(),
                "{name:?} (U+{:04X})",
                name.chars().last().map_or(0, u32::from)
            );
        }
    }
}
