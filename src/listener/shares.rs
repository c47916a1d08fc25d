//! Each client address's share of the connection slots.
//!
//! `max_connections` bounds the connections served at once; without a share per address one
//! client could hold every slot (idle sockets reopened as each is closed, or requests whose
//! answers it never reads), and every vendor would wait in the accept queue behind it. So one
//! address may hold at most `max_connections_per_address` of them (default half); a further
//! connection from it is closed at once, counted and logged as
//! `connections_per_address`. The TCP peer is what counts: a trusted proxy (`[trust]
//! trusted_proxies`) carries every client behind it and is exempt.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The connections each address holds, against the cap.
#[derive(Debug)]
pub struct Shares {
    cap: usize,
    held: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place in its address's share; given back when dropped.
#[derive(Debug)]
pub struct Held {
    shares: Arc<Shares>,
    addr: IpAddr,
}

impl Shares {
    /// Shares of at most `cap` connections per address.
    pub fn new(cap: usize) -> Arc<Shares> {
        Arc::new(Shares {
            cap,
            held: Mutex::new(HashMap::new()),
        })
    }

    /// A place for one more connection from `addr`, or `None` when it holds its share.
    pub fn take(self: &Arc<Self>, addr: IpAddr) -> Option<Held> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let n = held.entry(addr).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(Held {
            shares: Arc::clone(self),
            addr,
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self.shares.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.addr) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_its_share_and_gets_it_back() {
        let shares = Shares::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = shares.take(a).unwrap();
        let _second = shares.take(a).unwrap();
        assert!(shares.take(a).is_none());
        assert!(shares.take(b).is_some());
        drop(first);
        assert!(shares.take(a).is_some());
    }

    #[test]
    fn an_address_with_nothing_held_is_forgotten() {
        let shares = Shares::new(1);
        let a: IpAddr = "::1".parse().unwrap();
        drop(shares.take(a).unwrap());
        assert!(shares.held.lock().unwrap().is_empty());
    }
}
