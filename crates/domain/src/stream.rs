//! A wallet's event stream: every change of a wallet is one event appended to its stream,
//! at the next sequence (1 for `WalletCreated`, then 2, 3, ... with no gap); the wallet's
//! version is its last sequence. The stream is the truth: the wallet is [`fold`] of it.
//!
//! The fold applies each event with [`Wallet::apply`], the same function the commands use
//! to change a wallet once they have decided (so the write path and the fold cannot
//! disagree on what an event does). It checks, and refuses to fold past, anything that
//! would make the history impossible: a gap, an event of another wallet or of another
//! kind, or one whose stated balance is not what the events before it add up to.

use crate::events::{DomainEvent, EventType};
use crate::ids::{EventId, WalletId};
use crate::money::Money;
use crate::wallet::Wallet;

/// One event of a wallet's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Its place in its wallet's stream: the wallet's version once it is applied.
    pub sequence: i64,
    pub event: DomainEvent,
}

impl Appended {
    /// `event`, which `wallet` has just applied: at its version.
    pub(crate) fn on(wallet: &Wallet, event: impl Into<DomainEvent>) -> Self {
        Self {
            sequence: wallet.version(),
            event: event.into(),
        }
    }

    /// The wallet whose stream the event belongs to (the event's aggregate).
    pub fn wallet_id(&self) -> WalletId {
        WalletId::from_uuid(self.event.metadata().aggregate_id)
    }
}

/// Why a stream does not fold into a wallet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FoldError {
    #[error("the stream is empty")]
    Empty,
    #[error(
        "a wallet's stream starts with WalletCreated at sequence 1, not {event_type} at {sequence}"
    )]
    NotOpened {
        event_type: EventType,
        sequence: i64,
    },
    #[error(
        "event {event_id} is at sequence {sequence}, expected {expected}: a stream has no gaps"
    )]
    Gap {
        event_id: EventId,
        sequence: i64,
        expected: i64,
    },
    #[error("event {event_id} ({event_type}) belongs to {aggregate_id}, not to wallet {wallet_id}")]
    OtherWallet {
        event_id: EventId,
        event_type: EventType,
        aggregate_id: uuid::Uuid,
        wallet_id: WalletId,
    },
    #[error("event {event_id}: {event_type} is not an event of a wallet's stream")]
    NotAWalletEvent {
        event_id: EventId,
        event_type: EventType,
    },
    #[error("event {event_id} ({event_type}) disagrees with the wallet it applies to: {what}")]
    Inconsistent {
        event_id: EventId,
        event_type: EventType,
        what: String,
    },
}

/// The wallet a stream describes: its first event opens it, every other one is applied in
/// sequence order.
pub fn fold<'a>(stream: impl IntoIterator<Item = &'a Appended>) -> Result<Wallet, FoldError> {
    let mut stream = stream.into_iter();
    let first = stream.next().ok_or(FoldError::Empty)?;
    let DomainEvent::WalletCreated(created) = &first.event else {
        return Err(FoldError::NotOpened {
            event_type: first.event.event_type(),
            sequence: first.sequence,
        });
    };
    if first.sequence != 1 {
        return Err(FoldError::NotOpened {
            event_type: EventType::WalletCreated,
            sequence: first.sequence,
        });
    }
    let mut wallet = Wallet::opened(created)?;
    for appended in stream {
        let expected = wallet.version() + 1;
        if appended.sequence != expected {
            return Err(FoldError::Gap {
                event_id: appended.event.metadata().event_id,
                sequence: appended.sequence,
                expected,
            });
        }
        wallet.apply(&appended.event)?;
    }
    Ok(wallet)
}

/// Which way money moved for a wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    In,
    Out,
}

/// The money an event moves in or out of each wallet's balance, per wallet it names: what
/// the activity read model adds up, whether from Kafka (its consumer reads the events that
/// name both sides of a move) or from a wallet's own stream (`wallet-hub rebuild` keeps
/// the moves of that wallet). A transfer moves money out of its source and into its
/// destination; `FundsReceived` is that same destination side, as the destination's
/// stream records it. Holds placed, voided or expired move no balance.
pub fn money_moved(event: &DomainEvent) -> Vec<(WalletId, Flow, Money)> {
    match event {
        DomainEvent::FundsAdded(e) => vec![(e.wallet_id, Flow::In, e.amount)],
        DomainEvent::FundsReceived(e) => vec![(e.wallet_id, Flow::In, e.amount)],
        DomainEvent::FundsWithdrawn(e) => vec![(e.wallet_id, Flow::Out, e.amount)],
        DomainEvent::FundsTransferred(e) => vec![
            (e.from_wallet_id, Flow::Out, e.amount),
            (e.to_wallet_id, Flow::In, e.amount),
        ],
        DomainEvent::HoldCaptured(e) => std::iter::once((e.wallet_id, Flow::Out, e.amount))
            .chain(e.to_wallet_id.map(|to| (to, Flow::In, e.amount)))
            .collect(),
        DomainEvent::WalletCreated(_)
        | DomainEvent::UserCreated(_)
        | DomainEvent::WalletStatusChanged(_)
        | DomainEvent::HoldPlaced(_)
        | DomainEvent::HoldVoided(_)
        | DomainEvent::HoldExpired(_)
        | DomainEvent::VolumeComputed(_)
        | DomainEvent::WalletVelocityExceeded(_) => Vec::new(),
    }
}

/// Whether events of this type belong to a wallet's stream.
pub fn is_wallet_event(event_type: EventType) -> bool {
    match event_type {
        EventType::WalletCreated
        | EventType::FundsAdded
        | EventType::FundsWithdrawn
        | EventType::FundsTransferred
        | EventType::FundsReceived
        | EventType::WalletStatusChanged
        | EventType::HoldPlaced
        | EventType::HoldCaptured
        | EventType::HoldVoided
        | EventType::HoldExpired => true,
        EventType::UserCreated | EventType::VolumeComputed | EventType::WalletVelocityExceeded => {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::events::EventContext;
    use crate::ids::{TransactionId, UserId};
    use crate::money::Money;
    use crate::wallet::WalletName;

    fn opened() -> (Wallet, Vec<Appended>) {
        let ctx = EventContext::new(Utc::now(), "c");
        let usd = "USD".parse().expect("USD");
        let name = WalletName::parse("Travel").expect("name");
        let (mut wallet, created) = Wallet::create(WalletId::new(), UserId::new(), name, usd, &ctx);
        let mut stream = vec![Appended::on(&wallet, created)];
        let added = wallet
            .add_funds(Money::from_minor(500, usd), TransactionId::new(), &ctx)
            .expect("deposit");
        stream.push(Appended::on(&wallet, added));
        let frozen = wallet.freeze(&ctx).expect("freeze");
        stream.push(Appended::on(&wallet, frozen));
        (wallet, stream)
    }

    #[test]
    fn a_stream_folds_into_the_wallet_its_commands_left() {
        let (wallet, stream) = opened();
        assert_eq!(fold(&stream), Ok(wallet));
    }

    #[test]
    fn a_gap_an_empty_stream_or_a_missing_opening_is_refused() {
        let (_, stream) = opened();
        let gap = [stream[0].clone(), stream[2].clone()];
        assert!(matches!(
            fold(&gap),
            Err(FoldError::Gap {
                sequence: 3,
                expected: 2,
                ..
            })
        ));
        assert_eq!(fold(&[]), Err(FoldError::Empty));
        assert!(matches!(
            fold(&stream[1..]),
            Err(FoldError::NotOpened { .. })
        ));
    }

    #[test]
    fn an_event_of_another_wallet_or_a_wrong_balance_is_refused_and_changes_nothing() {
        let (wallet, stream) = opened();
        let (_, other) = opened();
        let mut applied = wallet.clone();
        assert!(matches!(
            applied.apply(&other[1].event),
            Err(FoldError::OtherWallet { .. })
        ));
        let DomainEvent::FundsAdded(mut added) = stream[1].event.clone() else {
            unreachable!("the second event is the deposit")
        };
        added.metadata.aggregate_id = wallet.id().as_uuid();
        added.balance_after = Money::from_minor(499, wallet.currency());
        assert!(matches!(
            applied.apply(&added.into()),
            Err(FoldError::Inconsistent { .. })
        ));
        assert_eq!(applied, wallet);
    }
}
