//! `--max-connections-per-peer`: how many connections one address may hold
//! open at once, and the count of all open connections.
//!
//! Without it a single host holding a few hundred idle connections (or
//! opening new ones as fast as old ones time out) fills the handshake slots
//! and the accept queue, and real clients from anywhere else wait until
//! their connect times out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use crate::tls::stats::TlsStats;

/// Open connections per peer address.
#[derive(Debug, Clone)]
pub struct Peers {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    limit: usize,
    stats: Arc<TlsStats>,
}

/// One open connection's place in [`Peers`]; given back on drop, however
/// the connection ends.
#[derive(Debug)]
pub struct PeerSlot {
    peers: Peers,
    ip: IpAddr,
}

impl Peers {
    /// At most `limit` (at least 1) connections per address.
    pub fn new(limit: usize, stats: Arc<TlsStats>) -> Peers {
        Peers {
            open: Arc::default(),
            limit: limit.max(1),
            stats,
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// A slot for one more connection from `ip`, or `None` if it has
    /// `limit` open already.
    pub fn admit(&self, ip: IpAddr) -> Option<PeerSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.limit {
            return None;
        }
        *n += 1;
        self.stats.connections.fetch_add(1, Ordering::Relaxed);
        Some(PeerSlot {
            peers: self.clone(),
            ip,
        })
    }

    /// Connections open from `ip` now.
    pub fn open(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = self.peers.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
        self.peers.stats.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_has_its_own_limit_and_slots_come_back_on_drop() {
        let stats = Arc::new(TlsStats::default());
        let peers = Peers::new(2, stats.clone());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = peers.admit(a).expect("first");
        let a2 = peers.admit(a).expect("second");
        assert!(peers.admit(a).is_none(), "a third from the same address");
        let b1 = peers.admit(b).expect("another address is not affected");
        assert_eq!(stats.connections.load(Ordering::Relaxed), 3);
        drop(a1);
        assert_eq!(peers.open(a), 1);
        let a3 = peers.admit(a).expect("a slot came back");
        drop((a2, a3, b1));
        assert_eq!(peers.open(a), 0);
        assert_eq!(stats.connections.load(Ordering::Relaxed), 0);
        assert!(peers.open.lock().unwrap().is_empty(), "no entry is kept");
    }
}
