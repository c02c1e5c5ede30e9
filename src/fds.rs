//! File descriptors are finite: raise the soft limit at start and size the
//! connection cap to what the descriptors allow.
//!
//! Why: with the common service limit of 1024 descriptors and a connection
//! cap of 10,000, idle clients can take every descriptor; accepts then fail
//! with `EMFILE`, origin connections cannot be opened, and valid viewers
//! time out. Each proxied connection needs two descriptors (client and
//! origin), and the process needs a few more for listeners, the admin
//! listener, the event loop, config and state files and vendor syncs.

/// Descriptors kept for everything that is not a client connection pair:
/// the admin listener's connections, listeners, the event loop, config and
/// state files and vendor syncs.
pub const RESERVED_FDS: u64 = 128;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit. Returns the soft
/// limit in force afterwards (`None` when unlimited or unknown).
pub fn raise_nofile_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => limit = raised,
            Err(error) => {
                tracing::warn!(%error, "cannot raise the open file limit to its hard limit");
            }
        }
    }
    limit.current
}

/// The most client connections `nofile` descriptors can serve: two per
/// connection after [`RESERVED_FDS`], at least 1.
pub fn connection_cap(nofile: u64) -> usize {
    let pairs = nofile.saturating_sub(RESERVED_FDS) / 2;
    usize::try_from(pairs.max(1)).unwrap_or(usize::MAX)
}

/// `configured` clamped to what the descriptors allow, with a warning naming
/// both numbers when it had to be lowered.
pub fn clamp_connections(configured: usize, nofile: Option<u64>) -> usize {
    let Some(nofile) = nofile else {
        return configured;
    };
    let cap = connection_cap(nofile);
    if configured > cap {
        tracing::warn!(
            max_connections = configured,
            open_file_limit = nofile,
            serving_at_most = cap,
            "server.max_connections exceeds what the open file limit allows (two descriptors per proxied connection, {RESERVED_FDS} kept in reserve); raise the limit (ulimit -n, LimitNOFILE=) to serve more"
        );
        cap
    } else {
        configured
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_keeps_a_reserve_and_two_descriptors_per_connection() {
        assert_eq!(connection_cap(1024), 448);
        assert_eq!(connection_cap(128), 1);
        assert_eq!(connection_cap(0), 1);
        assert_eq!(clamp_connections(10_000, Some(1024)), 448);
        assert_eq!(clamp_connections(100, Some(1024)), 100);
        assert_eq!(clamp_connections(10_000, None), 10_000);
    }
}
