//! `GetInfo`: what the agent says about itself.

use routewatch_proto::v1::{AgentInfo, Cursor, FamilyCount};

use crate::journal::Journal;
use std::collections::BTreeMap;

/// The agent's description: `hostname`, this build, the kernel, the
/// journal's position and table, and the open sessions.
pub fn agent_info(journal: &Journal, hostname: &str, start_time_unix_nano: i64) -> AgentInfo {
    let (cursor, oldest_seq, counts) = {
        let core = journal.lock();
        let cursor = Cursor {
            stream_id: core.info().stream_id.clone(),
            seq: core.last_seq(),
        };
        let mut counts: BTreeMap<i32, (u64, u64, u64)> = BTreeMap::new();
        for (_, table) in core.tables() {
            for (family, (routes, nexthops, rules)) in table.counts() {
                let sum = counts.entry(family).or_default();
                sum.0 += routes;
                sum.1 += nexthops;
                sum.2 += rules;
            }
        }
        (cursor, core.oldest_seq(), counts)
    };
    AgentInfo {
        hostname: hostname.to_owned(),
        kernel_release: kernel_release(),
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        cursor: Some(cursor),
        oldest_seq,
        start_time_unix_nano,
        counts: counts
            .into_iter()
            .map(|(family, (routes, nexthops, rules))| FamilyCount {
                family,
                routes,
                nexthops,
                rules,
            })
            .collect(),
        subscribers: journal.subscribers.list(),
        // The server's to say (see crate::identity); empty in process.
        agent_id: String::new(),
        agent_netns: String::new(),
    }
}

/// This host's name as the kernel knows it.
pub fn kernel_hostname() -> String {
    proc_value("/proc/sys/kernel/hostname").unwrap_or_else(|| "localhost".into())
}

/// `uname -r`.
pub fn kernel_release() -> String {
    proc_value("/proc/sys/kernel/osrelease").unwrap_or_default()
}

fn proc_value(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use crate::state::{Key, Record};

    use routewatch_proto::v1::{self as api, Family};

    use super::*;
    use crate::decode::Message;
    use crate::journal::RingLimits;
    use crate::state::{Action, Change, Object, Previous};

    #[test]
    fn counts_position_and_subscribers() {
        let limits = RingLimits {
            changes: 2,
            bytes: usize::MAX,
        };
        let journal = Journal::new("s1".into(), String::new(), limits);
        {
            let mut core = journal.lock();
            for dst in ["10.0.0.0/8", "10.1.0.0/16", "2001:db8::/32"] {
                let family = if dst.contains(':') {
                    Family::Inet6
                } else {
                    Family::Inet
                };
                let route = api::Route {
                    family: family as i32,
                    dst: dst.into(),
                    ..Default::default()
                };
                core.table_mut(&"".into()).insert_dumped(Message::NewRoute {
                    route: route.into(),
                    flags: 0,
                });
            }
            let change = |n: u32| Change {
                action: Action::Add,
                key: Key::test(n),
                object: Object::Route(Record::new(Key::test(n), &api::Route::default())),
                previous: Previous::None,
            };
            core.publish((0..5).map(change).collect(), api::Origin::Notification);
        }
        let _one = journal.subscribers.join("peer".into(), false);
        let info = agent_info(&journal, "h1", 5);
        assert_eq!(info.hostname, "h1");
        assert_eq!(info.cursor.unwrap().seq, 5);
        assert_eq!(info.oldest_seq, 4, "the ring keeps two changes");
        assert_eq!(info.start_time_unix_nano, 5);
        let counts: Vec<(i32, u64)> = info.counts.iter().map(|c| (c.family, c.routes)).collect();
        assert_eq!(
            counts,
            vec![(Family::Inet as i32, 2), (Family::Inet6 as i32, 1)]
        );
        assert_eq!(info.subscribers.len(), 1);
        assert!(!info.agent_version.is_empty());
    }
}
