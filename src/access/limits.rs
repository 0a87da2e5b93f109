//! Per-client limits of one domain: requests per second and concurrent admitted
//! connections, in memory bounded whatever the number of client addresses.
//!
//! - Requests: `pingora-limits`' rate estimator (a count-min sketch of fixed size,
//!   one-second windows). A second's requests may reach `burst`; once a client's
//!   last second went over `requests_per_second`, this second is held to
//!   `requests_per_second` — so a client can burst, and is held to its rate when it
//!   keeps going. Over → 429 `RATE_LIMITED`.
//! - Connections: a count per address of admitted requests still open (a live
//!   stream stays open), entries removed at zero, so the map never holds more
//!   entries than open connections (themselves capped by `server.max_connections`).
//!   At the cap → 403 `TOO_MANY_CONNECTIONS`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use pingora_limits::rate::Rate;

use super::Limits;
use crate::verdict::{Failure, Reason};

/// One domain's counting state (it outlives rule snapshots).
pub struct Limiter {
    rate: Rate,
    open: Mutex<HashMap<IpAddr, u32>>,
}

impl Default for Limiter {
    fn default() -> Limiter {
        Limiter {
            rate: Rate::new(Duration::from_secs(1)),
            open: Mutex::new(HashMap::new()),
        }
    }
}

impl Limiter {
    /// Counts one request of `ip` against its rate.
    pub fn request(&self, ip: IpAddr, l: &Limits) -> Result<(), Failure> {
        let Some(rps) = l.requests_per_second else {
            return Ok(());
        };
        let burst = l.burst.unwrap_or(rps).max(rps);
        let now = self.rate.observe(&ip, 1);
        let last = self.rate.rate(&ip);
        let over = now > burst as isize || (last > f64::from(rps) && now > rps as isize);
        match over {
            true => Err(Failure::with(
                Reason::RateLimited,
                format!("over {rps} requests per second (burst {burst})"),
            )),
            false => Ok(()),
        }
    }

    /// Takes one of `ip`'s connection slots; `Ok(true)` when one was taken (give
    /// it back with [`Limiter::release`]), `Ok(false)` when there is no cap.
    pub fn connect(&self, ip: IpAddr, l: &Limits) -> Result<bool, Failure> {
        let Some(cap) = l.connections else {
            return Ok(false);
        };
        let Ok(mut open) = self.open.lock() else {
            return Ok(false);
        };
        let n = open.entry(ip).or_insert(0);
        if *n >= cap {
            if *n == 0 {
                open.remove(&ip);
            }
            return Err(Failure::with(
                Reason::TooManyConnections,
                format!("{cap} connections of this client are open already"),
            ));
        }
        *n += 1;
        Ok(true)
    }

    /// Gives back a slot taken by [`Limiter::connect`].
    pub fn release(&self, ip: IpAddr) {
        let Ok(mut open) = self.open.lock() else {
            return;
        };
        if let Some(n) = open.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&ip);
            }
        }
    }

    /// Addresses with open connections counted (for tests and diagnostics).
    pub fn tracked(&self) -> usize {
        self.open.lock().map_or(0, |o| o.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(n))
    }

    #[test]
    fn a_burst_passes_and_then_the_rate_holds() {
        let l = Limiter::default();
        let limits = Limits {
            requests_per_second: Some(5),
            burst: Some(8),
            connections: None,
        };
        let passed = (0..20)
            .filter(|_| l.request(ip(1), &limits).is_ok())
            .count();
        assert_eq!(passed, 8);
        // Another client is unaffected.
        assert!(l.request(ip(2), &limits).is_ok());
    }

    #[test]
    fn connections_are_capped_per_client_and_memory_is_bounded() {
        let l = Limiter::default();
        let limits = Limits {
            connections: Some(2),
            ..Limits::default()
        };
        assert_eq!(l.connect(ip(1), &limits), Ok(true));
        assert_eq!(l.connect(ip(1), &limits), Ok(true));
        assert_eq!(
            l.connect(ip(1), &limits).unwrap_err().reason,
            Reason::TooManyConnections
        );
        assert_eq!(l.connect(ip(2), &limits), Ok(true));
        l.release(ip(1));
        assert_eq!(l.connect(ip(1), &limits), Ok(true));
        // 100,000 distinct clients come and go: nothing stays behind.
        for n in 0..100_000 {
            assert_eq!(l.connect(ip(1000 + n), &limits), Ok(true));
            l.release(ip(1000 + n));
        }
        for _ in 0..2 {
            l.release(ip(1));
        }
        l.release(ip(2));
        assert_eq!(l.tracked(), 0);
        // And the rate estimator is a fixed-size sketch, whatever the clients.
        let rated = Limits {
            requests_per_second: Some(1000),
            ..Limits::default()
        };
        for n in 0..100_000 {
            let _ = l.request(ip(n), &rated);
        }
    }
}
