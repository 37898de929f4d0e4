//! [`Gate`]: per-key ordering for groups that ask for it. JetStream has no per-key delivery
//! order (only `max_ack_pending = 1`, one message of the whole group at a time), so the bus
//! keeps, per durable consumer, which key is busy (a message of it is in flight or waiting for
//! a retry) and holds back later messages of a busy key, in stream order, keeping their leases
//! alive with `AckProgress` until the key is free. Held messages stay un-acknowledged in
//! JetStream, so a crash loses none of them.
//!
//! The gate lives in the [`NatsBus`](crate::NatsBus): consumers of one group opened from one
//! bus (one process) share it. Consumers of an ordered group in several processes each keep
//! their own gate, so per-key order then holds per process only: run an ordered group's
//! consumers from one process.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use mammoth_core::bus::Delivery;

/// Most messages a gate holds back before it stops fetching.
pub(crate) const HOLD_CAP: usize = 4096;

/// The ordering state of one durable consumer.
#[derive(Default)]
pub(crate) struct Gate {
    /// Key → the stream sequence of the message of that key now in flight or retrying.
    busy: HashMap<String, u64>,
    /// Held-back deliveries by stream sequence, with when their lease was last extended.
    held: BTreeMap<u64, (Delivery, Instant)>,
}

impl Gate {
    /// Lets `delivery` through when its key is free (or it is the key's current message, come
    /// back for a retry); otherwise holds it back.
    pub(crate) fn admit(&mut self, delivery: Delivery) -> Option<Delivery> {
        let sequence = delivery.message.sequence;
        let Some(key) = delivery.message.key.clone() else {
            return Some(delivery);
        };
        let earlier_held = self
            .held
            .range(..sequence)
            .any(|(_, (held, _))| held.message.key.as_deref() == Some(key.as_str()));
        match self.busy.get(&key) {
            Some(holder) if *holder == sequence => Some(delivery),
            None if !earlier_held => {
                self.busy.insert(key, sequence);
                Some(delivery)
            }
            _ => {
                self.held.insert(sequence, (delivery, Instant::now()));
                None
            }
        }
    }

    /// Up to `max` held deliveries whose key is free now, oldest first; their keys become busy.
    pub(crate) fn release(&mut self, max: usize) -> Vec<Delivery> {
        let mut out = Vec::new();
        let sequences: Vec<u64> = self.held.keys().copied().collect();
        for sequence in sequences {
            if out.len() >= max {
                break;
            }
            let Some((delivery, _)) = self.held.get(&sequence) else {
                continue;
            };
            let key = delivery.message.key.clone().unwrap_or_default();
            if self.busy.contains_key(&key) {
                continue;
            }
            if let Some((delivery, _)) = self.held.remove(&sequence) {
                self.busy.insert(key, sequence);
                out.push(delivery);
            }
        }
        out
    }

    /// Frees `key` when `sequence` is its current message (it was acknowledged or
    /// dead-lettered).
    pub(crate) fn done(&mut self, key: Option<&str>, sequence: u64) {
        if let Some(key) = key
            && self.busy.get(key) == Some(&sequence)
        {
            self.busy.remove(key);
        }
    }

    /// How many deliveries are held back.
    pub(crate) fn held(&self) -> usize {
        self.held.len()
    }

    /// The receipts of held deliveries whose lease was last extended before `before`; marks
    /// them extended now.
    pub(crate) fn due_for_extension(&mut self, before: Instant) -> Vec<String> {
        let now = Instant::now();
        self.held
            .values_mut()
            .filter(|(_, extended)| *extended < before)
            .map(|(delivery, extended)| {
                *extended = now;
                delivery.receipt.as_str().to_owned()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use mammoth_core::bus::{ConsumerGroup, Message, Receipt, Topic};

    use super::*;

    fn delivery(sequence: u64, key: &str) -> Delivery {
        Delivery {
            message: Message {
                topic: Topic::new("t").expect("topic"),
                id: uuid::Uuid::nil(),
                key: Some(key.to_owned()),
                payload: Vec::new(),
                headers: BTreeMap::new(),
                sequence,
                published_at_micros: 0,
            },
            group: ConsumerGroup::new("g").expect("group"),
            attempt: 1,
            receipt: Receipt::new(format!("{sequence} 1 reply")),
        }
    }

    #[test]
    fn a_busy_key_holds_later_messages_back_until_it_is_done_in_order() {
        let mut gate = Gate::default();
        assert!(gate.admit(delivery(1, "a")).is_some());
        assert!(gate.admit(delivery(2, "a")).is_none());
        assert!(gate.admit(delivery(3, "b")).is_some());
        assert!(gate.admit(delivery(4, "a")).is_none());
        assert!(gate.release(10).is_empty(), "a is still busy");
        assert!(
            gate.admit(delivery(1, "a")).is_some(),
            "a retry of the holder"
        );
        gate.done(Some("a"), 1);
        let next: Vec<u64> = gate
            .release(10)
            .iter()
            .map(|d| d.message.sequence)
            .collect();
        assert_eq!(next, [2], "one at a time, the oldest first");
        gate.done(Some("a"), 2);
        let next: Vec<u64> = gate
            .release(10)
            .iter()
            .map(|d| d.message.sequence)
            .collect();
        assert_eq!(next, [4]);
        assert_eq!(gate.held(), 0);
    }
}
