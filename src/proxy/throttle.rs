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
/// again are forgotten, and if that is not enough a new address spends
/// from the budget of its network ([`coarse_key`]) instead (never
/// forgetting a spent budget: that would reset an attacker).
pub const MAX_TRACKED: usize = 100_000;
/// Most networks tracked at once (see [`MAX_TRACKED`]).
pub const MAX_TRACKED_NETWORKS: usize = 20_000;
/// Shortest time between two sweeps of a full table: a sweep looks at every
/// entry, and a spraying flood must not pay for one per failure.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

// The key of an address: IPv4 as is, IPv6 by its /64.
use crate::host::subscriber as key;

/// The network of an address, for a table full of addresses: IPv4 /24,
/// IPv6 /48 (a site's allocation).
fn coarse_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0))
        }
        IpAddr::V4(v4) => {
            let o = v4.octets();
            IpAddr::V4(std::net::Ipv4Addr::new(o[0], o[1], o[2], 0))
        }
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Budgets by address, and by network for addresses a full table could
/// not take.
#[derive(Default)]
struct Tables {
    addresses: HashMap<IpAddr, Bucket>,
    networks: HashMap<IpAddr, Bucket>,
    last_sweep: Option<Instant>,
}

impl Tables {
    fn len(&self) -> usize {
        self.addresses.len() + self.networks.len()
    }
}

/// Failure budgets by client address.
pub struct Throttle {
    per_minute: f64,
    table: Mutex<Tables>,
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
            table: Mutex::new(Tables::default()),
            tracked: AtomicUsize::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        // The table is only a cache of budgets: a poisoned one is still usable.
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `b`'s budget at `now`, refilled at `per_minute` a minute, capped.
    fn level(&self, b: &Bucket, now: Instant) -> f64 {
        let secs = now.saturating_duration_since(b.at).as_secs_f64();
        (b.tokens + secs * self.per_minute / 60.0).min(self.per_minute)
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        b.tokens = self.level(b, now);
        b.at = now;
    }

    /// True when `ip` may be verified: its failure budget (or, for an
    /// address a full table could not take, its network's) is not empty.
    pub fn allows(&self, ip: IpAddr, now: Instant) -> bool {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return true;
        }
        let mut guard = self.lock();
        let tables = &mut *guard;
        let (table, k) = if tables.addresses.contains_key(&key(ip)) {
            (&mut tables.addresses, key(ip))
        } else if !tables.networks.is_empty() {
            (&mut tables.networks, coarse_key(ip))
        } else {
            return true;
        };
        let Some(b) = table.get_mut(&k) else {
            return true;
        };
        self.refill(b, now);
        let allowed = b.tokens >= 1.0;
        // A budget that refilled completely is forgotten, so the table (and
        // this lock on every request) goes away once guessing stops.
        if b.tokens >= self.per_minute {
            table.remove(&k);
            self.tracked.store(tables.len(), Ordering::Relaxed);
        }
        allowed
    }

    /// Spends one failure of `ip`'s budget (its network's when the table of
    /// addresses is full of spent budgets).
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let ip = key(ip);
        let mut guard = self.lock();
        let tables = &mut *guard;
        let per_minute = self.per_minute;
        let (table, k) =
            if tables.addresses.len() < MAX_TRACKED || tables.addresses.contains_key(&ip) {
                (&mut tables.addresses, ip)
            } else {
                // Forget the budgets that refilled, at most once a SWEEP_EVERY.
                if tables
                    .last_sweep
                    .is_none_or(|t| now.saturating_duration_since(t) >= SWEEP_EVERY)
                {
                    tables.last_sweep = Some(now);
                    let spent = |b: &mut Bucket| self.level(b, now) < per_minute;
                    tables.addresses.retain(|_, b| spent(b));
                    tables.networks.retain(|_, b| spent(b));
                }
                if tables.addresses.len() < MAX_TRACKED {
                    (&mut tables.addresses, ip)
                } else {
                    let net = coarse_key(ip);
                    if tables.networks.len() >= MAX_TRACKED_NETWORKS
                        && !tables.networks.contains_key(&net)
                    {
                        // Past every bound: not tracked (both tables full of
                        // spent budgets, held until they refill).
                        return;
                    }
                    (&mut tables.networks, net)
                }
            };
        let b = table.entry(k).or_insert(Bucket {
            tokens: per_minute,
            at: now,
        });
        self.refill(b, now);
        b.tokens = (b.tokens - 1.0).max(0.0);
        self.tracked.store(tables.len(), Ordering::Relaxed);
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

    /// An address-spraying flood that fills the table does not make every
    /// later address free to guess: a newcomer then spends its network's
    /// budget (IPv4 /24), and a full table is swept at most once a second.
    #[test]
    fn a_full_table_throttles_newcomers_by_network() {
        let t = Throttle::new(2).unwrap();
        let t0 = Instant::now();
        for i in 0..MAX_TRACKED as u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0A00_0000 + i));
            t.failed(ip, t0);
            t.failed(ip, t0);
        }
        let fresh: IpAddr = "198.51.100.7".parse().unwrap();
        let neighbour: IpAddr = "198.51.100.8".parse().unwrap();
        let elsewhere: IpAddr = "203.0.113.1".parse().unwrap();
        assert!(t.allows(fresh, t0));
        t.failed(fresh, t0);
        t.failed(fresh, t0);
        assert!(!t.allows(fresh, t0), "a newcomer is throttled by its /24");
        assert!(!t.allows(neighbour, t0), "as its network is");
        assert!(t.allows(elsewhere, t0), "other networks are not");
        // Once the budgets refill, the table takes addresses again.
        let later = t0 + Duration::from_secs(61);
        t.failed(elsewhere, later);
        assert!(t.allows(elsewhere, later));
        assert!(t.allows(fresh, later));
    }
}
