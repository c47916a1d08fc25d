//! A cap per client address on something each address holds for a while: requests in flight
//! (`[limits] max_in_flight_per_address`) and open connections (`[listener]
//! max_connections_per_address`), so one address can never take every slot of the global
//! cap and starve the other senders. An address is in the table only while it holds a slot,
//! so the table never holds more than the global cap.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The slots each address holds, against the cap.
pub struct AddressSlots {
    cap: usize,
    /// Shared with the slots of the config a reload replaced, so what was taken before it
    /// still counts (and is given back) under the new cap.
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One slot of its address's share; given back when dropped.
#[derive(Debug)]
pub struct AddressSlot {
    slots: Arc<AddressSlots>,
    peer: IpAddr,
}

impl std::fmt::Debug for AddressSlots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddressSlots")
            .field("cap", &self.cap)
            .finish()
    }
}

impl AddressSlots {
    /// At most `cap` slots per address.
    pub fn new(cap: usize) -> Arc<AddressSlots> {
        Arc::new(AddressSlots {
            cap,
            held: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// At most `cap` slots per address, counting those `previous` gave out.
    pub fn carrying_over(cap: usize, previous: &AddressSlots) -> Arc<AddressSlots> {
        Arc::new(AddressSlots {
            cap,
            held: Arc::clone(&previous.held),
        })
    }

    /// The cap.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// One more slot for `peer`, or `None` when it holds its share.
    pub fn take(self: &Arc<Self>, peer: IpAddr) -> Option<AddressSlot> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let n = held.entry(peer).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            slots: Arc::clone(self),
            peer,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_its_share_and_gets_it_back() {
        let slots = AddressSlots::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = slots.take(a).unwrap();
        let _second = slots.take(a).unwrap();
        assert!(slots.take(a).is_none());
        assert!(slots.take(b).is_some());
        drop(first);
        assert!(slots.take(a).is_some());
    }

    #[test]
    fn an_address_with_nothing_held_is_forgotten() {
        let slots = AddressSlots::new(1);
        let a: IpAddr = "::1".parse().unwrap();
        drop(slots.take(a).unwrap());
        assert!(slots.held.lock().unwrap().is_empty());
    }
}
