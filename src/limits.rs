//! Protection, between route and body: rate limits per source and per client address, and the
//! global cap on requests in flight, and a share of it per client address.
//!
//! Input: the matched source's name and the client address (the TCP peer, or what a trusted
//! proxy says it forwarded). Output: an [`Admitted`] permit
//! that the request holds until it is answered. Fails with [`LimitError`]: 429 (over a rate)
//! or 503 (too many requests in flight), both with `Retry-After`. It runs before the body is
//! read, so a refused request costs no body memory. Memory is bounded: one bucket per
//! configured source, at most `max_tracked_addresses` address buckets, and an in-flight count
//! only for addresses with a request in flight. Never keys
//! anything on request data other than the peer address, and never logs addresses.

pub mod address_slots;
pub mod shed_log;

pub use shed_log::log_shed;

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use self::address_slots::{AddressSlot, AddressSlots};

use crate::config::limits::{LimitsConfig, RateConfig};

/// The limiters of one runtime config; rebuilt (with fresh buckets) when the config is.
pub struct Protection {
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    per_address_in_flight: Arc<AddressSlots>,
    shed_retry_after: Duration,
    per_source: HashMap<String, SourceLimiter>,
    per_address: Option<Arc<AddressLimiter>>,
}

/// One source's bucket, with the quota it was built for (a reload keeps a bucket whose
/// quota did not change).
struct SourceLimiter {
    quota: Quota,
    limiter: Arc<DefaultDirectRateLimiter>,
}

/// Per-address buckets with a bounded table.
struct AddressLimiter {
    quota: Quota,
    max_tracked: usize,
    limiter: ArcSwap<DefaultKeyedRateLimiter<IpAddr>>,
}

impl std::fmt::Debug for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protection")
            .field("max_in_flight", &self.max_in_flight)
            .field("rate_limited_sources", &self.per_source.len())
            .field("per_address", &self.per_address.is_some())
            .finish()
    }
}

/// Held by a request while it is processed; frees its in-flight slot when dropped.
#[derive(Debug)]
pub struct Admitted {
    _permit: OwnedSemaphorePermit,
    _address: AddressSlot,
}

/// Why a request was refused before its body was read.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    /// Sender's fault: the source's vendor sends faster than its configured rate.
    #[error("too many requests for this source; retry later")]
    SourceRate {
        /// When a request would be allowed again.
        retry_after: Duration,
    },
    /// Sender's fault: this client address sends faster than the per-address rate.
    #[error("too many requests from this address; retry later")]
    AddressRate {
        /// When a request would be allowed again.
        retry_after: Duration,
    },
    /// Sender's fault: this client address already has `max_in_flight_per_address` requests
    /// in flight.
    #[error("too many requests in flight from this address; retry later")]
    AddressInFlight {
        /// Suggested wait (`shed_retry_after_secs`).
        retry_after: Duration,
    },
    /// Gateway's load: `max_in_flight_requests` are already being processed.
    #[error("the gateway is busy; retry later")]
    Overloaded {
        /// Suggested wait (`shed_retry_after_secs`).
        retry_after: Duration,
    },
}

impl LimitError {
    /// Bounded label for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            LimitError::SourceRate { .. } => "rate_limited_source",
            LimitError::AddressRate { .. } => "rate_limited_address",
            LimitError::AddressInFlight { .. } => "in_flight_limited_address",
            LimitError::Overloaded { .. } => "overloaded",
        }
    }

    /// True for 503 (load shed) rather than 429 (over a rate).
    pub fn is_overload(&self) -> bool {
        matches!(self, LimitError::Overloaded { .. })
    }

    /// Whole seconds for `Retry-After`: rounded up, at least 1.
    pub fn retry_after(&self) -> Duration {
        let wait = match self {
            LimitError::SourceRate { retry_after }
            | LimitError::AddressRate { retry_after }
            | LimitError::AddressInFlight { retry_after }
            | LimitError::Overloaded { retry_after } => *retry_after,
        };
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Duration::from_secs(secs.max(1))
    }
}

fn quota(rate: &RateConfig) -> Option<Quota> {
    let per_second = NonZeroU32::new(rate.requests_per_second)?;
    let burst = rate.burst.and_then(NonZeroU32::new).unwrap_or(per_second);
    Some(Quota::per_second(per_second).allow_burst(burst))
}

impl Protection {
    /// Builds the limiters for `limits` and the configured `sources` (names). Rates that are
    /// zero were refused by config validation; here they mean "no limit".
    pub fn build<'a>(limits: &LimitsConfig, sources: impl Iterator<Item = &'a str>) -> Protection {
        let mut per_source = HashMap::new();
        for name in sources {
            let rate = limits.source_rate.get(name).or(limits.per_source.as_ref());
            if let Some(q) = rate.and_then(quota) {
                per_source.insert(
                    name.to_owned(),
                    SourceLimiter {
                        quota: q,
                        limiter: Arc::new(RateLimiter::direct(q)),
                    },
                );
            }
        }
        let per_address = limits.per_address.as_ref().and_then(quota).map(|q| {
            Arc::new(AddressLimiter {
                quota: q,
                max_tracked: limits.max_tracked_addresses,
                limiter: ArcSwap::from_pointee(RateLimiter::keyed(q)),
            })
        });
        let max_in_flight = limits.max_in_flight_requests.max(1);
        Protection {
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            per_address_in_flight: AddressSlots::new(limits.in_flight_per_address()),
            shed_retry_after: Duration::from_secs(limits.shed_retry_after_secs),
            per_source,
            per_address,
        }
    }

    /// Takes over what `previous` (the running config's) has counted where the limits did not
    /// change: the requests in flight (a reload must not open a second set of slots beside
    /// the ones still held) and the rate buckets (a sender over its rate stays over it).
    pub fn carry_over(&mut self, previous: &Protection) {
        if self.max_in_flight == previous.max_in_flight {
            self.in_flight = Arc::clone(&previous.in_flight);
        }
        self.per_address_in_flight = AddressSlots::carrying_over(
            self.per_address_in_flight.cap(),
            &previous.per_address_in_flight,
        );
        for (name, bucket) in &mut self.per_source {
            if let Some(old) = previous.per_source.get(name) {
                if old.quota == bucket.quota {
                    bucket.limiter = Arc::clone(&old.limiter);
                }
            }
        }
        if let (Some(new), Some(old)) = (&mut self.per_address, &previous.per_address) {
            if new.quota == old.quota && new.max_tracked == old.max_tracked {
                *new = Arc::clone(old);
            }
        }
    }

    /// Admits one request for `source` from `peer`, or refuses it. Checks the address rate,
    /// then the source rate, then takes one of the address's in-flight slots and a global one,
    /// without waiting.
    pub fn admit(&self, source: &str, peer: IpAddr) -> Result<Admitted, LimitError> {
        let peer = peer.to_canonical();
        if let Some(addresses) = &self.per_address {
            addresses.check(peer)?;
        }
        if let Some(bucket) = self.per_source.get(source) {
            bucket
                .limiter
                .check()
                .map_err(|not_until| LimitError::SourceRate {
                    retry_after: not_until.wait_time_from(DefaultClock::default().now()),
                })?;
        }
        let address = self
            .per_address_in_flight
            .take(peer)
            .ok_or(LimitError::AddressInFlight {
                retry_after: self.shed_retry_after,
            })?;
        match Arc::clone(&self.in_flight).try_acquire_owned() {
            Ok(permit) => Ok(Admitted {
                _permit: permit,
                _address: address,
            }),
            Err(_) => Err(LimitError::Overloaded {
                retry_after: self.shed_retry_after,
            }),
        }
    }

    /// Address buckets currently remembered (for tests and debugging).
    pub fn tracked_addresses(&self) -> usize {
        self.per_address
            .as_ref()
            .map_or(0, |a| a.limiter.load().len())
    }
}

impl AddressLimiter {
    fn check(&self, peer: IpAddr) -> Result<(), LimitError> {
        let limiter = self.limiter.load();
        if limiter.len() >= self.max_tracked {
            // Forget addresses whose buckets are full again; if every one is still active
            // (a flood from many addresses), start a fresh table rather than grow.
            limiter.retain_recent();
            limiter.shrink_to_fit();
            if limiter.len() >= self.max_tracked {
                tracing::warn!(
                    max_tracked_addresses = self.max_tracked,
                    "per-address rate table full; resetting it"
                );
                self.limiter.store(Arc::new(RateLimiter::keyed(self.quota)));
            }
        }
        self.limiter
            .load()
            .check_key(&peer)
            .map_err(|not_until| LimitError::AddressRate {
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(edit: impl FnOnce(&mut LimitsConfig)) -> LimitsConfig {
        let mut l = LimitsConfig::default();
        edit(&mut l);
        l
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn source_over_its_burst_is_refused_with_a_retry_after() {
        let l = limits(|l| {
            l.per_source = Some(RateConfig {
                requests_per_second: 1,
                burst: Some(2),
            });
        });
        let p = Protection::build(&l, ["s"].into_iter());
        assert!(p.admit("s", A).is_ok());
        assert!(p.admit("s", B).is_ok());
        let err = p.admit("s", A).unwrap_err();
        assert_eq!(err.code(), "rate_limited_source");
        assert_eq!(err.retry_after(), Duration::from_secs(1));
    }

    #[test]
    fn source_override_replaces_the_default_rate() {
        let l = limits(|l| {
            l.per_source = Some(RateConfig {
                requests_per_second: 1,
                burst: Some(1),
            });
            l.source_rate.insert(
                "big".into(),
                RateConfig {
                    requests_per_second: 100,
                    burst: Some(100),
                },
            );
        });
        let p = Protection::build(&l, ["small", "big"].into_iter());
        for _ in 0..50 {
            assert!(p.admit("big", A).is_ok());
        }
        assert!(p.admit("small", A).is_ok());
        assert!(p.admit("small", A).is_err());
    }

    #[test]
    fn addresses_have_separate_buckets() {
        let l = limits(|l| {
            l.per_address = Some(RateConfig {
                requests_per_second: 1,
                burst: Some(1),
            });
        });
        let p = Protection::build(&l, ["s"].into_iter());
        assert!(p.admit("s", A).is_ok());
        assert_eq!(p.admit("s", A).unwrap_err().code(), "rate_limited_address");
        assert!(p.admit("s", B).is_ok());
    }

    #[test]
    fn one_address_cannot_hold_every_slot() {
        let l = limits(|l| {
            l.max_in_flight_requests = 4;
            l.per_address = Some(RateConfig {
                requests_per_second: 1000,
                burst: Some(1000),
            });
        });
        let p = Protection::build(&l, ["s"].into_iter());
        // The default per-address cap is half the global one: A gets two, B still gets in.
        let a1 = p.admit("s", A).unwrap();
        let _a2 = p.admit("s", A).unwrap();
        let err = p.admit("s", A).unwrap_err();
        assert_eq!(err.code(), "in_flight_limited_address");
        assert!(!err.is_overload());
        let _b1 = p.admit("s", B).unwrap();
        // A slot given back is A's again; an IPv4-mapped IPv6 peer is the same address.
        drop(a1);
        let mapped = IpAddr::V6(std::net::Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
        let _a3 = p.admit("s", mapped).unwrap();
        assert!(p.admit("s", A).is_err());
        // Without per-address rates as well; a cap as large as the global one leaves only that.
        let p = Protection::build(&limits(|l| l.max_in_flight_requests = 4), ["s"].into_iter());
        let _held: Vec<_> = (0..2).map(|_| p.admit("s", A).unwrap()).collect();
        assert_eq!(
            p.admit("s", A).unwrap_err().code(),
            "in_flight_limited_address"
        );
        let p = Protection::build(
            &limits(|l| {
                l.max_in_flight_requests = 4;
                l.max_in_flight_per_address = Some(4);
            }),
            ["s"].into_iter(),
        );
        let _held: Vec<_> = (0..4).map(|_| p.admit("s", A).unwrap()).collect();
        assert_eq!(p.admit("s", B).unwrap_err().code(), "overloaded");
    }

    #[test]
    fn a_reload_that_changes_the_address_share_still_counts_the_requests_in_flight() {
        let running =
            Protection::build(&limits(|l| l.max_in_flight_requests = 8), ["s"].into_iter());
        let held: Vec<_> = (0..4).map(|_| running.admit("s", A).unwrap()).collect();
        let mut next = Protection::build(
            &limits(|l| {
                l.max_in_flight_requests = 8;
                l.max_in_flight_per_address = Some(5);
            }),
            ["s"].into_iter(),
        );
        next.carry_over(&running);
        // A holds 4 under the old share of 4: one more under the new share of 5, no more.
        let fifth = next.admit("s", A).unwrap();
        assert_eq!(
            next.admit("s", A).unwrap_err().code(),
            "in_flight_limited_address"
        );
        // Slots admitted before the reload are given back to the same count.
        drop(held);
        drop(fifth);
        let again: Vec<_> = (0..5).map(|_| next.admit("s", A).unwrap()).collect();
        assert_eq!(again.len(), 5);
    }

    #[test]
    fn address_table_never_grows_past_its_cap() {
        let l = limits(|l| {
            l.per_address = Some(RateConfig {
                requests_per_second: 1,
                burst: Some(1),
            });
            l.max_tracked_addresses = 16;
        });
        let p = Protection::build(&l, ["s"].into_iter());
        for i in 0..200u32 {
            let _ = p.admit("s", IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
            assert!(p.tracked_addresses() <= 16, "{}", p.tracked_addresses());
        }
    }

    #[test]
    fn sheds_when_every_in_flight_slot_is_taken_and_recovers_after() {
        let l = limits(|l| l.max_in_flight_requests = 2);
        let p = Protection::build(&l, ["s"].into_iter());
        let first = p.admit("s", A).unwrap();
        let _second = p.admit("s", B).unwrap();
        let err = p.admit("s", IpAddr::from([192, 0, 2, 3])).unwrap_err();
        assert!(err.is_overload());
        assert_eq!(err.code(), "overloaded");
        assert_eq!(err.retry_after(), Duration::from_secs(5));
        drop(first);
        assert!(p.admit("s", A).is_ok());
    }

    #[test]
    fn a_reload_keeps_the_slots_in_use_and_the_buckets_whose_limits_did_not_change() {
        let config = |cap: usize, rate: u32| {
            limits(|l| {
                l.max_in_flight_requests = cap;
                l.per_source = Some(RateConfig {
                    requests_per_second: rate,
                    burst: Some(1),
                });
                l.per_address = Some(RateConfig {
                    requests_per_second: 1,
                    burst: Some(2),
                });
            })
        };
        let running = Protection::build(&config(2, 1), ["s", "t"].into_iter());
        let _held = running.admit("s", A).unwrap();
        let _also = running.admit("t", B).unwrap();
        // The same limits again: the two slots are still taken, s's and t's buckets empty.
        let mut same = Protection::build(&config(2, 1), ["s", "t"].into_iter());
        same.carry_over(&running);
        assert_eq!(
            same.admit("u", IpAddr::from([192, 0, 2, 9]))
                .unwrap_err()
                .code(),
            "overloaded"
        );
        drop(_held);
        assert_eq!(
            same.admit("s", B).unwrap_err().code(),
            "rate_limited_source"
        );
        // A's address bucket (burst 2) has one left, then none.
        assert!(same.admit("u", A).is_ok());
        assert_eq!(
            same.admit("u", A).unwrap_err().code(),
            "rate_limited_address"
        );
        // Limits that changed start afresh.
        let mut changed = Protection::build(&config(3, 2), ["s", "t"].into_iter());
        changed.carry_over(&running);
        assert!(changed.admit("s", IpAddr::from([192, 0, 2, 10])).is_ok());
    }

    #[test]
    fn unlimited_by_default() {
        let p = Protection::build(&LimitsConfig::default(), ["s"].into_iter());
        for _ in 0..1000 {
            assert!(p.admit("s", A).is_ok());
        }
    }
}
