//! The open files a collector may use: one connection per target it
//! follows, and a reserve for everything else. Past the limit, a target's
//! connection fails with EMFILE and is retried for ever, and the ops port
//! cannot accept a scrape; so the soft limit is raised to the hard one at
//! start, and targets beyond what it leaves room for wait for a connection
//! to be let go instead of taking the last descriptors.

use std::io;

/// Descriptors kept for everything but target connections: the standard
/// streams and the runtime's, the store's (a SQLite file with its WAL and
/// shared memory, or the PostgreSQL connection and its reopening), the ops
/// port's listener and the scrapes it serves, DNS lookups and TLS files.
pub const RESERVED: u64 = 64;

/// The process's open files limit (RLIMIT_NOFILE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit found at start.
    pub was: u64,
    /// The soft limit now.
    pub soft: u64,
    pub hard: u64,
}

impl OpenFiles {
    /// Raises the soft limit to the hard one (what an unprivileged process
    /// may do; the hard limit is the operator's: `ulimit -Hn`, systemd's
    /// `LimitNOFILE=`). When the kernel refuses (a hard limit above
    /// `fs.nr_open`), the soft limit stays as it was.
    pub fn raise() -> io::Result<OpenFiles> {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes the struct it is given, nothing else.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let was = limit.rlim_cur;
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            // SAFETY: setrlimit reads the struct it is given.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
        Ok(OpenFiles {
            was,
            soft: limit.rlim_cur,
            hard: limit.rlim_max,
        })
    }

    /// How many target connections may be open at once (at least one).
    pub fn connections(&self) -> usize {
        let room = self.soft.saturating_sub(RESERVED).max(1);
        usize::try_from(room)
            .unwrap_or(usize::MAX)
            .min(tokio::sync::Semaphore::MAX_PERMITS)
    }

    /// What to tell the operator when `targets` need more connections than
    /// the limit leaves room for; `None` when they fit.
    pub fn shortage(&self, targets: usize) -> Option<String> {
        let room = self.connections();
        (targets > room).then(|| {
            format!(
                "{targets} targets, but the open files limit ({}, hard limit {}) leaves room for {room} connections at once ({RESERVED} are kept for the store, the ops port and the rest): {room} targets are followed and the others wait until one is let go; raise the hard limit to at least {} (ulimit -Hn, LimitNOFILE= in a systemd unit, the container runtime's nofile ulimit)",
                self.soft,
                self.hard,
                targets as u64 + RESERVED
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(soft: u64, hard: u64) -> OpenFiles {
        OpenFiles {
            was: soft,
            soft,
            hard,
        }
    }

    #[test]
    fn connections_leave_the_reserve() {
        assert_eq!(limit(1024, 1024).connections(), 960);
        assert_eq!(limit(80, 80).connections(), 16);
        assert_eq!(limit(10, 10).connections(), 1, "one at least");
        assert!(limit(u64::MAX, u64::MAX).connections() > 1 << 40);
    }

    #[test]
    fn a_shortage_says_what_to_raise_the_limit_to() {
        assert_eq!(limit(1024, 1024).shortage(960), None);
        let told = limit(80, 80).shortage(100).unwrap();
        assert!(
            told.starts_with("100 targets, but the open files limit (80, hard limit 80) leaves room for 16 connections at once"),
            "{told}"
        );
        assert!(
            told.contains("raise the hard limit to at least 164"),
            "{told}"
        );
    }
}
