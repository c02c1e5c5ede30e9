//! `server.max_connections_per_ip`: how many client connections one address
//! may hold open at once, so that one host cannot take every connection
//! slot (`server.max_connections`) from everyone else.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

// IPv6 counts by /64: counting each address would let one host open a
// connection from each of its 2^64.
use crate::host::subscriber as group;

/// Open connections per address, shared by every listener. The map holds
/// only addresses with a connection open, so it is bounded by
/// `server.max_connections`.
#[derive(Debug)]
pub struct PerIp {
    limit: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// The address has `server.max_connections_per_ip` connections open.
#[derive(Debug, PartialEq, Eq)]
pub struct Full;

/// One open connection of an address; released when dropped.
#[derive(Debug)]
pub struct Slot {
    owner: Arc<PerIp>,
    key: IpAddr,
}

impl PerIp {
    /// At most `limit` connections per address (0: no limit).
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(PerIp {
            limit,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Takes a slot for `ip`: `Err(Full)` when it has `limit` open already,
    /// `Ok(None)` when there is no limit (nothing is counted then).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Option<Slot>, Full> {
        if self.limit == 0 {
            return Ok(None);
        }
        let key = group(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(key).or_insert(0);
        if *n >= self.limit {
            return Err(Full);
        }
        *n += 1;
        Ok(Some(Slot {
            owner: self.clone(),
            key,
        }))
    }

    /// Connections `ip` (its group) holds now.
    #[cfg(test)]
    fn open(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&group(ip)).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .owner
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn counts_per_address_and_releases_on_drop() {
        let per_ip = PerIp::new(2);
        let a = per_ip.admit(ip("192.0.2.1")).unwrap();
        let b = per_ip.admit(ip("192.0.2.1")).unwrap();
        assert!(a.is_some() && b.is_some());
        assert!(per_ip.admit(ip("192.0.2.1")).is_err());
        // Another address is unaffected; the mapped form is the same host.
        let _c = per_ip.admit(ip("192.0.2.2")).unwrap();
        assert!(per_ip.admit(ip("::ffff:192.0.2.1")).is_err());
        drop(a);
        assert_eq!(per_ip.open(ip("192.0.2.1")), 1);
        let _d = per_ip.admit(ip("192.0.2.1")).unwrap();
        drop((b, _d));
        assert_eq!(per_ip.open(ip("192.0.2.1")), 0);
        assert!(!per_ip.open.lock().unwrap().contains_key(&ip("192.0.2.1")));
    }

    #[test]
    fn ipv6_counts_per_64() {
        let per_ip = PerIp::new(1);
        let _a = per_ip.admit(ip("2001:db8:1:2::1")).unwrap();
        assert!(per_ip.admit(ip("2001:db8:1:2:ffff::9")).is_err());
        assert!(per_ip.admit(ip("2001:db8:1:3::1")).unwrap().is_some());
    }

    #[test]
    fn zero_is_no_limit() {
        let per_ip = PerIp::new(0);
        let slots: Vec<_> = (0..1000).map(|_| per_ip.admit(ip("192.0.2.1"))).collect();
        assert!(slots.iter().all(|s| matches!(s, Ok(None))));
        assert_eq!(per_ip.open(ip("192.0.2.1")), 0);
    }
}
