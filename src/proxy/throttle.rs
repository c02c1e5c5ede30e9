//! Failed guessing is throttled per client address.
//!
//! Each address has a budget of failed verifications (`bad_signature`,
//! `malformed_token`, `wrong_client`, `outside_acl`: what guessing produces;
//! not `missing_token` or `expired`, which honest players produce). The
//! budget holds `per_minute` failures and refills at `per_minute` a minute.
//! While it is empty, requests from the address are answered `429` without
//! being verified. A few failures never lock out the valid viewers behind the
//! same NAT; a flood does, for as long as it goes on.
//!
//! Why not the `governor` crate: the proxy must ask "is the budget empty?"
//! on every request without spending from it, and only failures spend; the
//! table must stay bounded under an address-spraying flood. Both take a few
//! lines here and would take a wrapper there.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::auth::DenyReason;

/// Most addresses tracked at once; past it, addresses whose budget is full
/// again are forgotten, and if that is not enough new addresses are not
/// tracked (never forgetting a spent budget: that would reset an attacker).
pub const MAX_TRACKED: usize = 100_000;

/// The key of an address: IPv4 as is, IPv6 by its /64 (one subscriber's
/// prefix; a single host can use every address in it).
fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Failure budgets by client address.
pub struct Throttle {
    per_minute: f64,
    table: Mutex<HashMap<IpAddr, Bucket>>,
    /// `table.len()`, readable without the lock: the common case (no
    /// address has failed lately) costs one atomic load per request.
    tracked: AtomicUsize,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("per_minute", &self.per_minute)
            .finish()
    }
}

/// True for the denials guessing produces.
pub fn is_guess(reason: DenyReason) -> bool {
    matches!(
        reason,
        DenyReason::BadSignature
            | DenyReason::MalformedToken
            | DenyReason::WrongClient
            | DenyReason::OutsideAcl
    )
}

impl Throttle {
    /// A throttle allowing `per_minute` failures a minute per address;
    /// `None` for 0 (off).
    pub fn new(per_minute: u32) -> Option<Throttle> {
        (per_minute > 0).then(|| Throttle {
            per_minute: f64::from(per_minute),
            table: Mutex::new(HashMap::new()),
            tracked: AtomicUsize::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Bucket>> {
        // The table is only a cache of budgets: a poisoned one is still usable.
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let secs = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + secs * self.per_minute / 60.0).min(self.per_minute);
        b.at = now;
    }

    /// True when `ip` may be verified: its failure budget is not empty.
    pub fn allows(&self, ip: IpAddr, now: Instant) -> bool {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return true;
        }
        let ip = key(ip);
        let mut table = self.lock();
        let allowed = match table.get_mut(&ip) {
            None => return true,
            Some(b) => {
                self.refill(b, now);
                b.tokens >= 1.0
            }
        };
        // A budget that refilled completely is forgotten, so the table (and
        // this lock on every request) goes away once guessing stops.
        if table.get(&ip).is_some_and(|b| b.tokens >= self.per_minute) {
            table.remove(&ip);
            self.tracked.store(table.len(), Ordering::Relaxed);
        }
        allowed
    }

    /// Spends one failure of `ip`'s budget.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let ip = key(ip);
        let mut table = self.lock();
        if table.len() >= MAX_TRACKED && !table.contains_key(&ip) {
            let per_minute = self.per_minute;
            table.retain(|_, b| {
                let secs = now.saturating_duration_since(b.at).as_secs_f64();
                b.tokens + secs * per_minute / 60.0 < per_minute
            });
            if table.len() >= MAX_TRACKED {
                // Full of spent budgets: keep them, track no newcomer.
                return;
            }
        }
        let b = table.entry(ip).or_insert(Bucket {
            tokens: self.per_minute,
            at: now,
        });
        self.refill(b, now);
        b.tokens = (b.tokens - 1.0).max(0.0);
        self.tracked.store(table.len(), Ordering::Relaxed);
    }

    /// Seconds until `ip` has one failure of budget again (for `Retry-After`).
    pub fn retry_after_secs(&self) -> u64 {
        // One token refills in 60 / per_minute seconds; round up, at least 1.
        (60.0 / self.per_minute).ceil().max(1.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_few_failures_pass_a_flood_is_throttled_and_the_budget_refills() {
        let t = Throttle::new(60).unwrap();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        assert!(t.allows(ip, t0));
        for _ in 0..59 {
            t.failed(ip, t0);
        }
        assert!(t.allows(ip, t0), "59 of 60 failures");
        t.failed(ip, t0);
        assert!(!t.allows(ip, t0));
        assert!(t.allows(other, t0), "another address is not affected");
        assert!(
            t.allows(ip, t0 + Duration::from_secs(1)),
            "one a second refills"
        );
        assert!(Throttle::new(0).is_none());
        assert_eq!(t.retry_after_secs(), 1);
        assert!(is_guess(DenyReason::BadSignature));
        assert!(!is_guess(DenyReason::Expired));
        assert!(!is_guess(DenyReason::MissingToken));
    }
}
