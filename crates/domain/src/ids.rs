//! Typed ids: a wallet id cannot be passed where a user id is expected.
//!
//! Each id is a UUID (new ones are version 7, so they sort by creation time), serialized
//! exactly as the bare UUID, so JSON payloads and database columns are the same as with
//! `Uuid`. Infrastructure converts at its edge with [`From`] and `as_uuid`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
            schemars::JsonSchema,
        )]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh id (UUID v7: unique, ordered by creation time).
            #[expect(
                clippy::new_without_default,
                reason = "a default that makes a fresh random id would surprise"
            )]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub const fn as_uuid(self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::from_str(s).map(Self)
            }
        }
    };
}

typed_id!(
    /// A wallet's id (a UUID).
    WalletId
);
typed_id!(
    /// A user's id (a UUID).
    UserId
);
typed_id!(
    /// Names one domain event; stable across re-sends, so consumers dedupe by it.
    EventId
);
typed_id!(
    /// Names a money movement: a deposit, a withdrawal or a transfer (the ledger
    /// transaction that records it, and the id the API returns for it).
    TransactionId
);
typed_id!(
    /// A hold's id: the id of the ledger transaction that placed it.
    HoldId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_reads_writes_and_serializes_exactly_as_its_uuid() {
        let uuid = Uuid::now_v7();
        let id = WalletId::from(uuid);
        assert_eq!(id.to_string(), uuid.to_string());
        assert_eq!(uuid.to_string().parse::<WalletId>(), Ok(id));
        assert_eq!(
            serde_json::to_value(id).expect("serializes"),
            serde_json::to_value(uuid).expect("serializes")
        );
        assert_eq!(
            serde_json::from_value::<WalletId>(serde_json::json!(uuid.to_string()))
                .expect("deserializes"),
            id
        );
        assert_eq!(Uuid::from(id), uuid);
        assert!("not-a-uuid".parse::<WalletId>().is_err());
    }

    #[test]
    fn new_ids_are_version_7_and_ordered_by_creation() {
        let (first, second) = (EventId::new(), EventId::new());
        assert_eq!(first.as_uuid().get_version_num(), 7);
        assert!(first < second);
    }
}
