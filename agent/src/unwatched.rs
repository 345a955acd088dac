//! Network namespaces in use on the host that `--netns all` does not watch.
//!
//! `--netns all` watches the agent's own namespace and those named in
//! `--netns-dir`. A namespace can be in use without being named there for
//! the agent: a container's namespace held only by its processes or kept
//! elsewhere (a container runtime's own directory), or every named one when
//! the agent runs in a mount namespace of its own without the host's
//! `/run/netns` mounted in. Two places show namespaces in use regardless of
//! the agent's mounts: each process's `/proc/PID/ns/net`, and the nsfs
//! mounts in the mount table of pid 1 (where `ip netns add` mounts them, in
//! the host's mount namespace). A namespace found there that the agent
//! neither runs in nor watches is unwatched; it is reported (once, and
//! again when the set changes) and counted in a gauge.
//!
//! Processes in another PID namespace (the agent in a container without the
//! host's PID namespace) are not visible, nor is pid 1's mount table then:
//! the check sees what the agent's /proc shows.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::path::Path;

/// Namespaces listed by name in one log line at most.
const LISTED: usize = 20;

/// Where a namespace in use was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    Process(u32),
    Mount(String),
}

/// Every network namespace in use that `proc` (normally `/proc`) shows,
/// by inode, with one place it was seen (a mount where there is one).
pub fn in_use(proc: &Path) -> BTreeMap<u64, Holder> {
    let mut found = BTreeMap::new();
    if let Ok(text) = fs::read_to_string(proc.join("1/mountinfo")) {
        for (ino, at) in nsfs_mounts(&text) {
            found.entry(ino).or_insert(Holder::Mount(at));
        }
    }
    let Ok(entries) = fs::read_dir(proc) else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Ok(link) = fs::read_link(entry.path().join("ns/net")) else {
            continue;
        };
        if let Some(ino) = link.to_str().and_then(net_ino) {
            found.entry(ino).or_insert(Holder::Process(pid));
        }
    }
    found
}

/// `net:[4026532174]` -> 4026532174.
fn net_ino(s: &str) -> Option<u64> {
    s.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

/// The network namespaces mounted in a mountinfo table, with where.
fn nsfs_mounts(mountinfo: &str) -> Vec<(u64, String)> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (fields, fs) = line.split_once(" - ")?;
            if fs.split_whitespace().next() != Some("nsfs") {
                return None;
            }
            let mut fields = fields.split_whitespace();
            let root = fields.nth(3)?;
            let at = fields.next()?;
            Some((net_ino(root)?, unescape(at)))
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Follows the unwatched namespaces and says when the set changes.
#[derive(Debug, Default)]
pub struct Unwatched {
    /// Unwatched at the previous check.
    previous: BTreeSet<u64>,
    /// What the log said last.
    reported: BTreeSet<u64>,
    checked: bool,
}

impl Unwatched {
    /// Compares `in_use` (from [`in_use`] on `proc`) with `watched`
    /// (inodes; the agent's own included) and logs a change. A namespace counts from the second
    /// check that finds it unwatched (one being named at this moment is
    /// watched a second later), except at the first check: what exists
    /// when the agent starts is reported at once. Returns how many are
    /// unwatched.
    pub fn check(
        &mut self,
        in_use: &BTreeMap<u64, Holder>,
        proc: &Path,
        watched: &HashSet<u64>,
        dir: &Path,
    ) -> usize {
        let found: BTreeSet<u64> = in_use
            .keys()
            .copied()
            .filter(|ino| !watched.contains(ino))
            .collect();
        let confirmed: BTreeSet<u64> = if self.checked {
            found.intersection(&self.previous).copied().collect()
        } else {
            found.clone()
        };
        self.checked = true;
        self.previous = found;
        if confirmed != self.reported {
            if confirmed.is_empty() {
                tracing::info!("every network namespace in use on this host is watched again");
            } else {
                let mut listed: Vec<String> = confirmed
                    .iter()
                    .take(LISTED)
                    .map(|ino| describe(*ino, &in_use[ino], proc))
                    .collect();
                if confirmed.len() > LISTED {
                    listed.push(format!("and {} more", confirmed.len() - LISTED));
                }
                let visible = if dir.is_dir() {
                    format!("named in {}", dir.display())
                } else {
                    format!(
                        "named in {}, which does not exist in the agent's mount namespace",
                        dir.display()
                    )
                };
                tracing::warn!(
                    unwatched = confirmed.len(),
                    namespaces = %listed.join(", "),
                    "{} network namespace(s) in use on this host are NOT watched: --netns all sees only the agent's own and those {visible}. Run the agent in the host's mount namespace, or mount the host's {} into its container (with HostToContainer propagation); name a process's namespace with `ip netns attach NAME PID`",
                    confirmed.len(),
                    dir.display()
                );
            }
            self.reported = confirmed.clone();
        }
        confirmed.len()
    }
}

fn describe(ino: u64, holder: &Holder, proc: &Path) -> String {
    match holder {
        Holder::Mount(at) => format!("net:[{ino}] mounted at {at} for pid 1"),
        Holder::Process(pid) => {
            let comm = fs::read_to_string(proc.join(format!("{pid}/comm"))).unwrap_or_default();
            format!("net:[{ino}] of pid {pid} ({})", comm.trim())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // From `cat /proc/1/mountinfo` after `ip netns add rwt-7172-0`.
    const MOUNTINFO: &str = "\
22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
45 22 0:23 / /run rw,nosuid,nodev shared:12 - tmpfs tmpfs rw,size=401580k
46 45 0:4 net:[4026532175] /run/netns/rwt-7172-0 rw shared:2 - nsfs nsfs rw
47 45 0:4 net:[4026532176] /run/netns/with\\040space rw shared:2 - nsfs nsfs rw
48 45 0:4 mnt:[4026532177] /run/keep-mnt rw shared:2 - nsfs nsfs rw
";

    #[test]
    fn network_namespace_mounts_are_read_from_mountinfo() {
        assert_eq!(
            nsfs_mounts(MOUNTINFO),
            vec![
                (4026532175, "/run/netns/rwt-7172-0".to_string()),
                (4026532176, "/run/netns/with space".to_string()),
            ]
        );
    }

    #[test]
    fn this_process_namespace_is_in_use() {
        let own = fs::read_link("/proc/self/ns/net").unwrap();
        let own = net_ino(own.to_str().unwrap()).unwrap();
        let found = in_use(Path::new("/proc"));
        assert!(found.contains_key(&own), "{found:?}");
    }

    #[test]
    fn a_namespace_counts_from_its_second_check_after_the_first() {
        let proc =
            std::env::temp_dir().join(format!("routewatch-unwatched-{}", std::process::id()));
        let _ = fs::remove_dir_all(&proc);
        fs::create_dir_all(proc.join("1")).unwrap();
        let dir = Path::new("/nonexistent");
        let mut u = Unwatched::default();
        fs::write(proc.join("1/mountinfo"), MOUNTINFO).unwrap();
        let watched: HashSet<u64> = [4026532176].into();
        assert_eq!(
            u.check(&in_use(&proc), &proc, &watched, dir),
            1,
            "at start: at once"
        );
        let mut more = MOUNTINFO.to_string();
        more.push_str("49 45 0:4 net:[4026532178] /run/netns/new rw - nsfs nsfs rw\n");
        fs::write(proc.join("1/mountinfo"), &more).unwrap();
        assert_eq!(
            u.check(&in_use(&proc), &proc, &watched, dir),
            1,
            "new: not yet"
        );
        assert_eq!(
            u.check(&in_use(&proc), &proc, &watched, dir),
            2,
            "still there"
        );
        let all: HashSet<u64> = [4026532175, 4026532176, 4026532178].into();
        assert_eq!(u.check(&in_use(&proc), &proc, &all, dir), 0, "watched now");
        let _ = fs::remove_dir_all(&proc);
    }
}
