//! `routewatch info`: what each agent says about itself.

use std::io::{self, Write};

use routewatch_agent::info::kernel_hostname;
use routewatch_agent::{Pipeline, PipelineConfig};
use routewatch_proto::v1::{AgentInfo, Family};
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use crate::cli::Watch;
use crate::printer::{aligned, rfc3339, Format};
use crate::subscription::resolve;
use crate::target::Target;
use crate::tls::Security;
use crate::{protojson, remote, ClientError, Failures};

/// Asks every target (each address of a `dns:///` target) and prints the
/// answers in target order.
pub async fn run(watch: Watch, shutdown: CancellationToken) -> Result<(), ClientError> {
    let mut addresses: Vec<Target> = Vec::new();
    let mut failures = Failures::new(0);
    for target in crate::targets(&watch)? {
        failures.add_one();
        match &target {
            Target::Dns { name, port } => match resolve(name, *port).await {
                Ok(found) => {
                    failures.add_one();
                    addresses.extend(found.iter().map(|a| Target::Remote(a.to_string())));
                }
                Err(problem) => failures.note(ClientError::Resolve {
                    target: target.to_string(),
                    problem,
                }),
            },
            _ => addresses.push(target),
        }
    }
    let security = crate::security(&watch, &addresses)?;
    let timeout = watch.reach.connect_timeout();
    let answers = futures::future::join_all(
        addresses
            .iter()
            .map(|t| ask(t, &security, timeout, &shutdown)),
    )
    .await;
    let mut found = Vec::new();
    for (target, answer) in addresses.iter().zip(answers) {
        match answer {
            Ok(info) => found.push((target.to_string(), info)),
            Err(e) => failures.note(e),
        }
    }
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    print(&mut out, watch.format, &found)?;
    out.flush()?;
    failures.result()
}

async fn ask(
    target: &Target,
    security: &Security,
    timeout: std::time::Duration,
    shutdown: &CancellationToken,
) -> Result<AgentInfo, ClientError> {
    match target {
        Target::Remote(addr) => remote::get_info(addr, security, timeout).await,
        // In process: this host's table, read now.
        _ => {
            let mut pipeline = Pipeline::start(PipelineConfig::default(), shutdown.child_token())?;
            pipeline.ready().await?;
            let info = pipeline.subscriber().info(&kernel_hostname());
            let _ = pipeline.stop().await;
            Ok(info)
        }
    }
}

/// Prints `(target, info)` answers in `format`.
pub fn print(out: &mut dyn Write, format: Format, found: &[(String, AgentInfo)]) -> io::Result<()> {
    match format {
        Format::Text => {
            for (target, info) in found {
                out.write_all(text(target, info).as_bytes())?;
            }
        }
        Format::Json => {
            for (target, info) in found {
                serde_json::to_writer(&mut *out, &json_line(target, info))?;
                out.write_all(b"\n")?;
            }
        }
        Format::JsonArray => {
            let all: Vec<_> = found.iter().map(|(t, i)| json_line(t, i)).collect();
            serde_json::to_writer(&mut *out, &all)?;
            out.write_all(b"\n")?;
        }
        Format::Jsonpb => {
            for (target, info) in found {
                let line = json!({
                    "target": target,
                    "info": protojson::to_json("routewatch.v1.AgentInfo", info),
                });
                serde_json::to_writer(&mut *out, &line)?;
                out.write_all(b"\n")?;
            }
        }
        Format::Table => {
            let header: Vec<String> = [
                "HOST",
                "TARGET",
                "VERSION",
                "KERNEL",
                "STREAM",
                "SEQ",
                "INET",
                "INET6",
                "NEXTHOPS",
                "SUBSCRIBERS",
            ]
            .map(str::to_owned)
            .to_vec();
            let rows: Vec<Vec<String>> = found
                .iter()
                .map(|(target, info)| {
                    let cursor = info.cursor.clone().unwrap_or_default();
                    vec![
                        info.hostname.clone(),
                        target.clone(),
                        info.agent_version.clone(),
                        info.kernel_release.clone(),
                        cursor.stream_id,
                        cursor.seq.to_string(),
                        routes(info, Family::Inet).to_string(),
                        routes(info, Family::Inet6).to_string(),
                        info.counts
                            .iter()
                            .map(|c| c.nexthops)
                            .sum::<u64>()
                            .to_string(),
                        info.subscribers.len().to_string(),
                    ]
                })
                .collect();
            out.write_all(aligned(&header, &rows).as_bytes())?;
        }
    }
    Ok(())
}

fn routes(info: &AgentInfo, family: Family) -> u64 {
    info.counts
        .iter()
        .filter(|c| c.family == family as i32)
        .map(|c| c.routes)
        .sum()
}

fn family_name(family: i32) -> &'static str {
    crate::printer::family_name(family)
}

/// Counts as `{"inet":N,"inet6":M}`, nexthop groups under "unspec".
fn per_family(info: &AgentInfo, pick: fn(&routewatch_proto::v1::FamilyCount) -> u64) -> Value {
    let mut m = Map::new();
    for family in [Family::Inet, Family::Inet6] {
        m.insert(family_name(family as i32).into(), 0.into());
    }
    for c in &info.counts {
        let n = pick(c);
        if n > 0 || c.family != Family::Unspecified as i32 {
            m.insert(family_name(c.family).into(), n.into());
        }
    }
    Value::Object(m)
}

/// One JSON line: field names in routewatch's JSON style.
pub fn json_line(target: &str, info: &AgentInfo) -> Value {
    let cursor = info.cursor.clone().unwrap_or_default();
    let subscribers: Vec<Value> = info
        .subscribers
        .iter()
        .map(|s| {
            json!({
                "peer": s.peer,
                "since": rfc3339(s.since_unix_nano),
                "seq": s.seq,
                "filtered": s.filtered,
            })
        })
        .collect();
    json!({
        "host": info.hostname,
        "target": target,
        "agent_id": info.agent_id,
        "agent_netns": info.agent_netns,
        "agent_version": info.agent_version,
        "kernel_release": info.kernel_release,
        "start_time": rfc3339(info.start_time_unix_nano),
        "stream_id": cursor.stream_id,
        "seq": cursor.seq,
        "oldest_seq": info.oldest_seq,
        "routes": per_family(info, |c| c.routes),
        "nexthops": per_family(info, |c| c.nexthops),
        "rules": per_family(info, |c| c.rules),
        "subscribers": subscribers,
    })
}

/// The text form: a paragraph per agent.
pub fn text(target: &str, info: &AgentInfo) -> String {
    let cursor = info.cursor.clone().unwrap_or_default();
    let counts = |pick: fn(&routewatch_proto::v1::FamilyCount) -> u64| {
        let Value::Object(m) = per_family(info, pick) else {
            return String::new();
        };
        m.iter()
            .map(|(family, n)| format!("{family} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut s = format!("{} ({target})\n", info.hostname);
    s.push_str(&format!(
        "  agent        routewatch-agent {}, started {}\n",
        info.agent_version,
        rfc3339(info.start_time_unix_nano)
    ));
    if !info.agent_id.is_empty() {
        s.push_str(&format!(
            "  identity     {}/{}\n",
            info.agent_id, info.agent_netns
        ));
    }
    s.push_str(&format!("  kernel       {}\n", info.kernel_release));
    s.push_str(&format!(
        "  stream       {} at seq {} (journal from seq {})\n",
        cursor.stream_id, cursor.seq, info.oldest_seq
    ));
    s.push_str(&format!("  routes       {}\n", counts(|c| c.routes)));
    s.push_str(&format!("  nexthops     {}\n", counts(|c| c.nexthops)));
    s.push_str(&format!("  rules        {}\n", counts(|c| c.rules)));
    s.push_str(&format!("  subscribers  {}\n", info.subscribers.len()));
    for sub in &info.subscribers {
        let peer = if sub.peer.is_empty() {
            "in process"
        } else {
            &sub.peer
        };
        let filtered = if sub.filtered { ", filtered" } else { "" };
        s.push_str(&format!(
            "    {peer} since {}, at seq {}{filtered}\n",
            rfc3339(sub.since_unix_nano),
            sub.seq
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use routewatch_proto::v1::{Cursor, FamilyCount, SubscriberInfo};

    use super::*;

    fn info() -> AgentInfo {
        AgentInfo {
            hostname: "node1".into(),
            kernel_release: "6.18.0".into(),
            agent_version: "0.1.0".into(),
            cursor: Some(Cursor {
                stream_id: "0123abcd".into(),
                seq: 1234,
            }),
            oldest_seq: 1000,
            start_time_unix_nano: 0,
            counts: vec![
                FamilyCount {
                    family: Family::Unspecified as i32,
                    routes: 0,
                    nexthops: 1,
                    rules: 0,
                },
                FamilyCount {
                    family: Family::Inet as i32,
                    routes: 12,
                    nexthops: 2,
                    rules: 4,
                },
                FamilyCount {
                    family: Family::Inet6 as i32,
                    routes: 8,
                    nexthops: 0,
                    rules: 2,
                },
            ],
            agent_id: "3d1219c7c4c5404aaa1f6d2a48adfda4".into(),
            agent_netns: "net:[4026531833]".into(),
            subscribers: vec![SubscriberInfo {
                peer: "10.0.0.9:53412".into(),
                since_unix_nano: 0,
                seq: 1234,
                filtered: true,
            }],
        }
    }

    #[test]
    fn text_reads_as_a_paragraph() {
        assert_eq!(
            text("127.0.0.1:50051", &info()),
            "\
node1 (127.0.0.1:50051)
  agent        routewatch-agent 0.1.0, started 1970-01-01T00:00:00Z
  identity     3d1219c7c4c5404aaa1f6d2a48adfda4/net:[4026531833]
  kernel       6.18.0
  stream       0123abcd at seq 1234 (journal from seq 1000)
  routes       inet 12, inet6 8
  nexthops     inet 2, inet6 0, unspec 1
  rules        inet 4, inet6 2
  subscribers  1
    10.0.0.9:53412 since 1970-01-01T00:00:00Z, at seq 1234, filtered
"
        );
    }

    #[test]
    fn json_and_table_forms() {
        let v = json_line("127.0.0.1:50051", &info());
        assert_eq!(v["host"], "node1");
        assert_eq!(v["agent_netns"], "net:[4026531833]");
        assert_eq!(v["routes"], json!({"inet": 12, "inet6": 8}));
        assert_eq!(v["nexthops"], json!({"inet": 2, "inet6": 0, "unspec": 1}));
        assert_eq!(v["rules"], json!({"inet": 4, "inet6": 2}));
        assert_eq!(v["subscribers"][0]["filtered"], true);
        let mut out = Vec::new();
        print(
            &mut out,
            Format::Table,
            &[("127.0.0.1:50051".into(), info())],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\
HOST   TARGET           VERSION  KERNEL  STREAM    SEQ   INET  INET6  NEXTHOPS  SUBSCRIBERS
node1  127.0.0.1:50051  0.1.0    6.18.0  0123abcd  1234  12    8      3         1
"
        );
    }
}
