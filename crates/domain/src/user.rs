//! The `User` aggregate: someone who owns wallets, known by a unique email address.

use std::hash::{Hash, Hasher};

use crate::display_name;
use crate::events::{EventContext, EventType, UserCreated};
use crate::ids::UserId;
use chrono::{DateTime, Utc};
use email_address::{EmailAddress, Options};

/// Why user input was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UserError {
    #[error("email address must be at most 254 characters")]
    EmailTooLong,
    /// The message stays generic so that the address never lands in logs; the source says
    /// which rule failed.
    #[error("email address is not valid")]
    InvalidEmail(#[source] email_address::Error),
    #[error("user name {0}")]
    InvalidName(&'static str),
}

/// An email address: trimmed, checked, kept as written, compared case-insensitively.
///
/// Accepted: `local@domain.tld` as RFC 5322 defines it (dot-atom or quoted local part of at
/// most 64 bytes, a domain with at least two labels). Refused, beyond the RFC: display names
/// (`Ann <ann@example.com>`), domain literals (`ann@[192.0.2.1]`), single-label domains
/// (`ann@localhost`), and any whitespace, control or invisible formatting character
/// (zero-width, bidirectional overrides), which can make two addresses look alike.
#[derive(Debug, Clone)]
pub struct Email {
    /// As the user wrote it (trimmed): what we show and send mail to.
    address: String,
    /// Lower case: what equality, hashing and the unique index use.
    normalized: String,
}

impl Email {
    /// RFC 5321's limit on a forward path, less the angle brackets.
    pub const MAX_CHARS: usize = 254;

    pub fn parse(input: &str) -> Result<Self, UserError> {
        let address = input.trim();
        if address.chars().count() > Self::MAX_CHARS {
            return Err(UserError::EmailTooLong);
        }
        if address.chars().any(is_forbidden_char) {
            return Err(UserError::InvalidEmail(
                email_address::Error::InvalidCharacter,
            ));
        }
        let options = Options::default()
            .with_required_tld()
            .without_domain_literal()
            .without_display_text();
        EmailAddress::parse_with_options(address, options).map_err(UserError::InvalidEmail)?;
        Ok(Self {
            address: address.to_owned(),
            normalized: address.to_lowercase(),
        })
    }

    /// The address as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.address
    }

    /// The lower-case form: store it in the column with the unique index, and look users
    /// up by it, so that `Ann@Example.com` and `ann@example.com` are one user.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }
}

/// Characters an address never needs and that hide in plain sight: whitespace (a quoted
/// local part may hold spaces per RFC, we do not take them), controls, and the invisible
/// formatting characters (zero-width, bidirectional controls, byte-order mark).
fn is_forbidden_char(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

impl PartialEq for Email {
    fn eq(&self, other: &Self) -> bool {
        self.normalized == other.normalized
    }
}

impl Eq for Email {}

impl Hash for Email {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.normalized.hash(state);
    }
}

/// A user's display name: 1 to 100 characters, not blank, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
    pub const MAX_CHARS: usize = display_name::MAX_CHARS;

    pub fn parse(name: &str) -> Result<Self, UserError> {
        display_name::check(name).map_err(UserError::InvalidName)?;
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    id: UserId,
    email: Email,
    name: UserName,
    created_at: DateTime<Utc>,
}

impl User {
    /// Signs a user up. That the email is not taken yet is for the store to enforce (a
    /// unique index on [`Email::normalized`]).
    pub fn create(
        id: UserId,
        email: Email,
        name: UserName,
        ctx: &EventContext,
    ) -> (User, UserCreated) {
        let user = User {
            id,
            email,
            name,
            created_at: ctx.occurred_at(),
        };
        let event = UserCreated {
            metadata: ctx.metadata(EventType::UserCreated, id),
            user_id: id,
            email: user.email.as_str().to_owned(),
            name: user.name.as_str().to_owned(),
        };
        (user, event)
    }

    /// Rebuilds a user from stored state.
    pub fn restore(id: UserId, email: Email, name: UserName, created_at: DateTime<Utc>) -> User {
        User {
            id,
            email,
            name,
            created_at,
        }
    }

    pub fn id(&self) -> UserId {
        self.id
    }

    pub fn email(&self) -> &Email {
        &self.email
    }

    pub fn name(&self) -> &UserName {
        &self.name
    }

    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn email(input: &str) -> Email {
        Email::parse(input).expect("valid email")
    }

    #[test]
    fn a_new_user_keeps_what_was_given_and_says_so_in_its_event() {
        let ctx = EventContext::new(Utc::now(), "corr-u");
        let id = UserId::new();
        let name = UserName::parse("Ada Lovelace").expect("valid name");
        let (user, event) = User::create(id, email(" Ada@Example.com "), name, &ctx);
        assert_eq!(user.id(), id);
        assert_eq!(user.email().as_str(), "Ada@Example.com");
        assert_eq!(user.name().as_str(), "Ada Lovelace");
        assert_eq!(user.created_at(), ctx.occurred_at());
        assert_eq!(event.user_id, id);
        assert_eq!(event.email, "Ada@Example.com");
        assert_eq!(event.name, "Ada Lovelace");
        assert_eq!(event.metadata.aggregate_id, id.as_uuid());
        assert_eq!(event.metadata.correlation_id, "corr-u");
        assert_eq!(event.metadata.event_id.as_uuid().get_version_num(), 7);
    }

    #[test]
    fn emails_are_trimmed_kept_as_written_and_compared_case_insensitively() {
        let mixed = email("\tAda.Lovelace+wallet@Example.COM\n");
        let lower = email("ada.lovelace+wallet@example.com");
        assert_eq!(mixed.as_str(), "Ada.Lovelace+wallet@Example.COM");
        assert_eq!(mixed.normalized(), "ada.lovelace+wallet@example.com");
        assert_eq!(mixed, lower);
        assert_eq!(HashSet::from([mixed, lower]).len(), 1);
        assert_ne!(email("ada@example.com"), email("ada@example.org"));
    }

    #[test]
    fn ordinary_addresses_are_accepted() {
        for input in [
            "a@b.co",
            "first.last@sub.example.com",
            "o'brien+tag@example.ie",
            "\"quoted\"@example.com",
            "user@xn--bcher-kva.example",
            "jörg@bücher.example",
            "1234@123.example",
        ] {
            assert!(Email::parse(input).is_ok(), "{input:?} should be accepted");
        }
    }

    #[test]
    fn malformed_addresses_are_rejected() {
        for input in [
            "",
            "   ",
            "plainaddress",
            "@example.com",
            "ann@",
            "ann@@example.com",
            "ann@example",
            "ann@localhost",
            "ann@.example.com",
            "ann@example..com",
            "ann@-example.com",
            ".ann@example.com",
            "ann.@example.com",
            "an..n@example.com",
            "ann smith@example.com",
            "\"ann smith\"@example.com",
            "ann@exa mple.com",
            "Ann <ann@example.com>",
            "ann@[192.0.2.1]",
            "ann\u{0}@example.com",
            "ann\u{200B}@example.com",
            "ann@exam\u{202E}ple.com",
            "ann\u{00A0}@example.com",
            "ann@example.com\u{85}x",
        ] {
            assert!(
                matches!(Email::parse(input), Err(UserError::InvalidEmail(_))),
                "{input:?} should be rejected as invalid"
            );
        }
    }

    #[test]
    fn emails_longer_than_254_characters_are_rejected_after_trimming() {
        let domain = format!(
            "{}.{}.{}.com",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63)
        );
        let at_limit = format!(
            "{}@{domain}",
            "x".repeat(Email::MAX_CHARS - 1 - domain.len())
        );
        assert_eq!(at_limit.len(), 254);
        assert!(Email::parse(&format!("  {at_limit}  ")).is_ok());
        assert!(matches!(
            Email::parse(&format!("y{at_limit}")),
            Err(UserError::EmailTooLong)
        ));
        let local_part_too_long = format!("{}@example.com", "x".repeat(65));
        assert!(matches!(
            Email::parse(&local_part_too_long),
            Err(UserError::InvalidEmail(_))
        ));
    }

    #[test]
    fn invalid_email_messages_never_repeat_the_address() {
        let error = Email::parse("secret person@example.com").expect_err("has a space");
        assert_eq!(error.to_string(), "email address is not valid");
        assert!(std::error::Error::source(&error).is_some());
    }

    #[test]
    fn blank_long_or_control_user_names_are_rejected() {
        assert_eq!(
            UserName::parse(" "),
            Err(UserError::InvalidName("must not be blank"))
        );
        assert!(UserName::parse(&"x".repeat(101)).is_err());
        assert!(UserName::parse("a\nb").is_err());
        assert_eq!(
            UserName::parse("").map_err(|e| e.to_string()),
            Err("user name must not be blank".to_owned())
        );
        assert!(UserName::parse(&"é".repeat(100)).is_ok());
    }

    #[test]
    fn a_restored_user_is_the_user_that_was_stored() {
        let ctx = EventContext::new(Utc::now(), "corr-u");
        let name = UserName::parse("Grace").expect("valid name");
        let (user, _) = User::create(UserId::new(), email("grace@example.com"), name, &ctx);
        let restored = User::restore(
            user.id(),
            user.email().clone(),
            user.name().clone(),
            user.created_at(),
        );
        assert_eq!(restored, user);
    }
}
