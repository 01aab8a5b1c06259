//! The rule shared by the names people give things (wallets, users): what a person can read
//! back on a screen, so 1 to 100 characters, not blank, no control characters.

/// Longest name accepted, in characters (not bytes).
pub(crate) const MAX_CHARS: usize = 100;

/// Checks a name; the error completes a sentence such as "wallet name must not be blank".
/// The name is stored as given: no trimming, so what was accepted is what is shown.
pub(crate) fn check(name: &str) -> Result<(), &'static str> {
    if name.trim().is_empty() {
        return Err("must not be blank");
    }
    if name.chars().count() > MAX_CHARS {
        return Err("must be at most 100 characters");
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_long_or_control_names_are_rejected_and_others_accepted() {
        assert_eq!(check(""), Err("must not be blank"));
        assert_eq!(check(" \t "), Err("must not be blank"));
        assert_eq!(
            check(&"x".repeat(101)),
            Err("must be at most 100 characters")
        );
        assert_eq!(check("a\u{7}b"), Err("must not contain control characters"));
        assert_eq!(check(&"é".repeat(MAX_CHARS)), Ok(()));
        assert_eq!(check(" Émile "), Ok(()));
    }
}
