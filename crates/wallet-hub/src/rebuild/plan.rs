//! What `wallet-hub rebuild` (and `wallet-hub audit`) decide about one wallet, without any
//! I/O: which fields of its row differ from the fold of its stream, and what its activity
//! read model should hold.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};
use domain::{Appended, DomainEvent, Money, Wallet};
use store::activity::{Activity, Direction};

/// A field of a wallet's row that the fold of its stream also gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Field {
    Owner,
    Name,
    Currency,
    Balance,
    Held,
    Status,
    Version,
    CreatedAt,
}

impl Field {
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Owner => "owner",
            Field::Name => "name",
            Field::Currency => "currency",
            Field::Balance => "balance",
            Field::Held => "held",
            Field::Status => "status",
            Field::Version => "version",
            Field::CreatedAt => "created_at",
        }
    }

    /// Every field: what differs when the row does not even read as a wallet.
    pub const ALL: [Field; 8] = [
        Field::Owner,
        Field::Name,
        Field::Currency,
        Field::Balance,
        Field::Held,
        Field::Status,
        Field::Version,
        Field::CreatedAt,
    ];
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The fields of `row` that are not what `folded` says; `None` (a row that does not read
/// as a wallet) differs in all of them.
pub fn differences(row: Option<&Wallet>, folded: &Wallet) -> BTreeSet<Field> {
    let Some(row) = row else {
        return Field::ALL.into_iter().collect();
    };
    [
        (Field::Owner, row.user_id() != folded.user_id()),
        (Field::Name, row.name() != folded.name()),
        (Field::Currency, row.currency() != folded.currency()),
        (Field::Balance, row.balance() != folded.balance()),
        (Field::Held, row.held() != folded.held()),
        (Field::Status, row.status() != folded.status()),
        (Field::Version, row.version() != folded.version()),
        (Field::CreatedAt, row.created_at() != folded.created_at()),
    ]
    .into_iter()
    .filter_map(|(field, differs)| differs.then_some(field))
    .collect()
}

/// The money a wallet's own event moves in or out of it: the activity consumer's rule
/// ([`domain::money_moved`]), kept to the moves of this wallet (a transfer it sent names
/// the destination too, whose stream has the receiving side as `FundsReceived`).
pub fn movement(wallet: &Wallet, event: &DomainEvent) -> Option<(Direction, Money)> {
    domain::money_moved(event)
        .into_iter()
        .find(|(id, ..)| *id == wallet.id())
        .map(|(_, flow, amount)| (flow.into(), amount))
}

/// Why the activity of a stream cannot be added up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the activity totals of wallet {0} overflow")]
pub struct ActivityOverflow(pub domain::WalletId);

/// The activity `wallet`'s stream adds up to, counting only the events at `applied`
/// sequences (those whose movement the activity consumer has applied; the others are on
/// their way to it); `None` when none of them moved money (the consumer writes no row
/// then).
pub fn activity(
    wallet: &Wallet,
    stream: &[Appended],
    applied: &BTreeSet<i64>,
) -> Result<Option<Activity>, ActivityOverflow> {
    let overflow = || ActivityOverflow(wallet.id());
    let mut totals = (0_i64, 0_i64, 0_i64);
    let mut last: Option<DateTime<Utc>> = None;
    for appended in stream.iter().filter(|a| applied.contains(&a.sequence)) {
        let Some((direction, amount)) = movement(wallet, &appended.event) else {
            continue;
        };
        let minor = amount.minor_units();
        let total = match direction {
            Direction::In => &mut totals.0,
            Direction::Out => &mut totals.1,
        };
        *total = total.checked_add(minor).ok_or_else(overflow)?;
        totals.2 += 1;
        let at = appended.event.metadata().occurred_at;
        last = Some(last.map_or(at, |last| last.max(at)));
    }
    Ok(last.map(|last_activity_at| Activity {
        wallet_id: wallet.id(),
        currency: wallet.currency().code().to_owned(),
        total_in_minor: totals.0,
        total_out_minor: totals.1,
        events_applied: totals.2,
        last_activity_at,
    }))
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use domain::events::EventContext;
    use domain::{TransactionId, UserId, WalletId, WalletName};

    use super::*;

    fn stream() -> (Wallet, Vec<Appended>) {
        let ctx = EventContext::new(Utc::now(), "c");
        let usd = "USD".parse().expect("USD");
        let name = WalletName::parse("Travel").expect("name");
        let (mut wallet, created) = Wallet::create(WalletId::new(), UserId::new(), name, usd, &ctx);
        let mut stream = vec![Appended {
            sequence: 1,
            event: created.into(),
        }];
        let added = wallet
            .add_funds(Money::from_minor(500, usd), TransactionId::new(), &ctx)
            .expect("deposit");
        stream.push(Appended {
            sequence: 2,
            event: added.into(),
        });
        let withdrawn = wallet
            .withdraw(Money::from_minor(200, usd), TransactionId::new(), &ctx)
            .expect("withdrawal");
        stream.push(Appended {
            sequence: 3,
            event: withdrawn.into(),
        });
        let frozen = wallet.freeze(&ctx).expect("freeze");
        stream.push(Appended {
            sequence: 4,
            event: frozen.into(),
        });
        (wallet, stream)
    }

    #[test]
    fn a_row_that_is_its_fold_differs_in_nothing_and_an_unreadable_one_in_everything() {
        let (wallet, stream) = stream();
        let folded = domain::fold(&stream).expect("folds");
        assert!(differences(Some(&wallet), &folded).is_empty());
        assert_eq!(differences(None, &folded).len(), Field::ALL.len());
    }

    #[test]
    fn a_row_of_another_status_and_version_differs_in_those_fields_only() {
        let (_, stream) = stream();
        let folded = domain::fold(&stream).expect("folds");
        let older = domain::fold(&stream[..3]).expect("folds");
        assert_eq!(
            differences(Some(&older), &folded),
            [Field::Status, Field::Version].into_iter().collect()
        );
    }

    #[test]
    fn activity_counts_the_applied_money_events_only() {
        let (wallet, stream) = stream();
        let all: BTreeSet<i64> = (1..=4).collect();
        let activity_of =
            |applied: &BTreeSet<i64>| activity(&wallet, &stream, applied).expect("no overflow");
        let full = activity_of(&all).expect("money moved");
        assert_eq!(
            (
                full.total_in_minor,
                full.total_out_minor,
                full.events_applied
            ),
            (500, 200, 2)
        );
        assert_eq!(full.currency, "USD");
        let deposit_only = activity_of(&[1, 2, 4].into_iter().collect()).expect("money moved");
        assert_eq!(
            (deposit_only.total_out_minor, deposit_only.events_applied),
            (0, 1)
        );
        assert_eq!(activity_of(&[1, 4].into_iter().collect()), None);
    }
}
