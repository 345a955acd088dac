//! The filter flags of `tail` and `show`: one allow filter built from the
//! flags, a deny filter from the flags preceded by `--not`, and any number
//! of whole filters as JSON (`--allow`, `--deny`).
//!
//! The semantics are the agent's (and Hubble's): an event passes when it
//! matches any allow filter, or there is none, and no deny filter. Within
//! one filter the flags AND together and the values of one flag OR. So
//! `--proto bgp,static --within 10.0.0.0/8` is "BGP or static routes inside
//! 10.0.0.0/8", and `--not --proto kernel --not --table local` drops the
//! kernel's routes of the local table (the negated flags form one deny
//! filter; give `--not --proto kernel,boot` to drop either protocol).
//!
//! `--not` applies to the flag right after it, which clap does not model:
//! the flags' positions on the command line (`ArgMatches::indices_of`) tell
//! which flag each `--not` precedes.

use std::collections::BTreeSet;

use clap::builder::ValueParser;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};
use routewatch_proto::filter::{Filters, InvalidFilter, Vocabulary};
use routewatch_proto::v1::Filter;

use crate::protojson;

const HEADING: &str =
    "Filters (repeat a flag or list values with commas to OR them; flags AND together)";

/// One filter flag and the `Filter` field it fills.
struct Field {
    /// The flag (`--proto`) and the argument's id.
    flag: &'static str,
    /// The field's name in the API (and in the agent's errors).
    api: &'static str,
    value_name: &'static str,
    env: &'static str,
    help: &'static str,
    values: fn(&mut Filter) -> &mut Vec<String>,
}

const FIELDS: &[Field] = &[
    Field {
        flag: "family",
        api: "family",
        value_name: "FAMILY",
        env: "ROUTEWATCH_FAMILY",
        help: "Address family: inet or inet6 (-4, -6 for short)",
        values: |f| &mut f.family,
    },
    Field {
        flag: "table",
        api: "table",
        value_name: "TABLE",
        env: "ROUTEWATCH_TABLE",
        help: "Routing table of a route, or the table a rule looks up: a number or a name: main, local, default, or one of the agent host's rt_tables (the agent checks names it has, the CLI those built in)",
        values: |f| &mut f.table,
    },
    Field {
        flag: "proto",
        api: "protocol",
        value_name: "PROTO",
        env: "ROUTEWATCH_PROTO",
        help: "Protocol that installed the route, nexthop object or rule: kernel, boot, static, dhcp, bgp, ospf, ... (or a name of the agent host's rt_protos) or a number",
        values: |f| &mut f.protocol,
    },
    Field {
        flag: "type",
        api: "type",
        value_name: "TYPE",
        env: "ROUTEWATCH_TYPE",
        help: "Route type: unicast, local, broadcast, multicast, blackhole, unreachable, prohibit, throw, ... or a number",
        values: |f| &mut f.r#type,
    },
    Field {
        flag: "scope",
        api: "scope",
        value_name: "SCOPE",
        env: "ROUTEWATCH_SCOPE",
        help: "Scope: global, site, link, host, nowhere (or a name of the agent host's rt_scopes) or a number",
        values: |f| &mut f.scope,
    },
    Field {
        flag: "prefix",
        api: "prefix",
        value_name: "PREFIX",
        env: "ROUTEWATCH_PREFIX",
        help: "Destination is exactly PREFIX (10.0.0.0/24, 2001:db8::/64, an address, or default)",
        values: |f| &mut f.prefix,
    },
    Field {
        flag: "within",
        api: "within",
        value_name: "PREFIX",
        env: "ROUTEWATCH_WITHIN",
        help: "Destination lies within PREFIX (equal or more specific)",
        values: |f| &mut f.within,
    },
    Field {
        flag: "contains",
        api: "contains",
        value_name: "ADDR|PREFIX",
        env: "ROUTEWATCH_CONTAINS",
        help: "Destination contains the address or prefix (equal or less specific): the routes that could carry traffic to it",
        values: |f| &mut f.contains,
    },
    Field {
        flag: "gateway-within",
        api: "gateway_within",
        value_name: "PREFIX",
        env: "ROUTEWATCH_GATEWAY_WITHIN",
        help: "A gateway (of any path, or of a nexthop object) lies within PREFIX; an address matches one gateway",
        values: |f| &mut f.gateway_within,
    },
    Field {
        flag: "dev",
        api: "dev",
        value_name: "DEV",
        env: "ROUTEWATCH_DEV",
        help: "Output device (of any path, or of a nexthop object)",
        values: |f| &mut f.dev,
    },
    Field {
        flag: "vrf",
        api: "vrf",
        value_name: "VRF",
        env: "ROUTEWATCH_VRF",
        help: "VRF whose table holds the route (the name of a vrf device). Never matches nexthop objects or rules",
        values: |f| &mut f.vrf,
    },
    Field {
        flag: "changed-by",
        api: "changed_by",
        value_name: "WHO",
        env: "ROUTEWATCH_CHANGED_BY",
        help: "Who made the change: kernel, a pid, an executable path (/usr/sbin/bird), a Kubernetes pod UID or a command name (ip, zebra). Snapshots and reconciles of unknown cause match none",
        values: |f| &mut f.changed_by,
    },
    Field {
        flag: "metric",
        api: "metric",
        value_name: "N|N-M|N-",
        env: "ROUTEWATCH_METRIC",
        help: "Route metric: a value, an inclusive range, or N and above",
        values: |f| &mut f.metric,
    },
    Field {
        flag: "object",
        api: "object",
        value_name: "OBJECT",
        env: "ROUTEWATCH_OBJECT",
        help: "Kind of object: route, nexthop or rule. Filters on type, prefixes, gateways, devices and metric match routes (and some nexthop objects) only: they never match a rule",
        values: |f| &mut f.object,
    },
    Field {
        flag: "netns",
        api: "netns",
        value_name: "NETNS",
        env: "ROUTEWATCH_NETNS",
        help: "Network namespace (\"\" for the agent's own).",
        values: |f| &mut f.netns,
    },
    Field {
        flag: "action",
        api: "action",
        value_name: "ACTION",
        env: "ROUTEWATCH_ACTION",
        help: "Only adds or only deletes (add, delete). Filtering on the action or origin gives a log of those events, not a picture of the table",
        values: |f| &mut f.action,
    },
    Field {
        flag: "origin",
        api: "origin",
        value_name: "ORIGIN",
        env: "ROUTEWATCH_ORIGIN",
        help: "Why the agent sent the event: notification, dump (the snapshot) or reconcile",
        values: |f| &mut f.origin,
    },
];

/// `-4` and `-6`: `--family inet`, `--family inet6`.
const FAMILY_SHORTS: &[(&str, char, &str)] = &[("inet4", '4', "inet"), ("inet6", '6', "inet6")];

/// The filters given on the command line, checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FilterArgs {
    pub allow: Vec<Filter>,
    pub deny: Vec<Filter>,
}

impl FilterArgs {
    /// No filter: every event.
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }
}

/// One filter flag as given: where, which field, which values.
struct Occurrence {
    /// The position of the flag itself among the command line's arguments.
    at: usize,
    field: &'static Field,
    values: Vec<String>,
    /// From the environment: belongs to the allow filter, has no position.
    from_env: bool,
}

impl Args for FilterArgs {
    fn augment_args(cmd: Command) -> Command {
        let mut cmd = cmd.next_help_heading(HEADING);
        for field in FIELDS {
            let mut arg = Arg::new(field.flag)
                .long(field.flag)
                .value_name(field.value_name)
                .help(field.help)
                .env(field.env)
                .action(ArgAction::Append)
                .value_delimiter(',');
            if field.flag == "proto" {
                arg = arg.visible_alias("protocol");
            }
            cmd = cmd.arg(arg);
        }
        for (id, short, family) in FAMILY_SHORTS {
            cmd = cmd.arg(
                Arg::new(*id)
                    .short(*short)
                    .help(format!("Short for --family {family}"))
                    .action(ArgAction::Append)
                    .num_args(0)
                    .default_missing_value(*family)
                    .value_parser(ValueParser::string()),
            );
        }
        cmd.arg(
            Arg::new("not")
                .long("not")
                .help("Negate the next filter flag: events matching it are dropped (all negated flags form one deny filter)")
                .action(ArgAction::Append)
                .num_args(0)
                .default_missing_value("not")
                .value_parser(ValueParser::string()),
        )
        .arg(
            Arg::new("allow")
                .long("allow")
                .value_name("JSON")
                .env("ROUTEWATCH_ALLOW")
                .help("A whole allow filter in the API's JSON, e.g. '{\"protocol\":[\"bgp\"],\"within\":[\"10.0.0.0/8\"]}' (or a JSON list of them); passes events besides those the flags allow")
                .action(ArgAction::Append),
        )
        .arg(
            Arg::new("deny")
                .long("deny")
                .value_name("JSON")
                .env("ROUTEWATCH_DENY")
                .help("A whole deny filter in the API's JSON (or a JSON list of them)")
                .action(ArgAction::Append),
        )
        .next_help_heading(None)
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for FilterArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        build(matches).map_err(|message| {
            let message = match from_environment(matches, &message) {
                Some(var) => format!(
                    "{message}\n  (the value comes from the environment variable {var}: fix or unset it)"
                ),
                None => message,
            };
            clap::Error::raw(clap::error::ErrorKind::ValueValidation, message)
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

/// The environment variable that gave the value `message` (which starts
/// with its flag, `--family inet7: ...`) complains about, if one did.
fn from_environment(matches: &ArgMatches, message: &str) -> Option<String> {
    let flag = message.split_whitespace().next()?.strip_prefix("--")?;
    let flag = flag.trim_end_matches(':');
    let command = FilterArgs::augment_args(Command::new("filters"));
    let arg = command
        .get_arguments()
        .find(|a| a.get_long() == Some(flag))?;
    let id = arg.get_id().as_str();
    let from_env = matches!(
        matches
            .try_get_raw(id)
            .ok()
            .flatten()
            .and(matches.value_source(id)),
        Some(ValueSource::EnvVariable)
    );
    from_env.then(|| arg.get_env().map(|v| v.to_string_lossy().into_owned()))?
}

fn build(matches: &ArgMatches) -> Result<FilterArgs, String> {
    let occurrences = occurrences(matches);
    let nots: Vec<usize> = matches
        .indices_of("not")
        .map(|i| i.collect())
        .unwrap_or_default();
    // `--not` is recorded one past its own position (see FAMILY_SHORTS):
    // the flag it negates starts at the recorded position plus one.
    let negated: BTreeSet<usize> = nots.iter().map(|n| n + 1).collect();
    for n in &nots {
        if !occurrences.iter().any(|o| !o.from_env && o.at == n + 1) {
            return Err(
                "--not must come right before a filter flag, as in --not --proto kernel".into(),
            );
        }
    }
    let mut allowed = Filter::default();
    let mut denied = Filter::default();
    let (mut any_allowed, mut any_denied) = (false, false);
    for o in &occurrences {
        let (filter, any) = if !o.from_env && negated.contains(&o.at) {
            (&mut denied, &mut any_denied)
        } else {
            (&mut allowed, &mut any_allowed)
        };
        (o.field.values)(filter).extend(o.values.iter().cloned());
        *any = true;
    }
    check(&allowed, "")?;
    check(&denied, "--not ")?;
    let mut args = FilterArgs::default();
    if any_allowed {
        args.allow.push(allowed);
    }
    if any_denied {
        args.deny.push(denied);
    }
    for (id, list) in [("allow", &mut args.allow), ("deny", &mut args.deny)] {
        for text in matches.get_many::<String>(id).into_iter().flatten() {
            for filter in json_filters(text).map_err(|e| format!("--{id} {text}: {e}"))? {
                Filters::compile_in(std::slice::from_ref(&filter), &[], Vocabulary::Deferred)
                    .map_err(|e| format!("--{id} {text}: {}", without_position(e)))?;
                list.push(filter);
            }
        }
    }
    Ok(args)
}

/// Every filter flag given, in command-line order (the environment's
/// values last).
fn occurrences(matches: &ArgMatches) -> Vec<Occurrence> {
    let mut out = Vec::new();
    for field in FIELDS {
        let Some(values) = matches.get_many::<String>(field.flag) else {
            continue;
        };
        let values: Vec<String> = values.cloned().collect();
        if matches.value_source(field.flag) == Some(ValueSource::EnvVariable) {
            out.push(Occurrence {
                at: usize::MAX,
                field,
                values,
                from_env: true,
            });
            continue;
        }
        let indices: Vec<usize> = matches
            .indices_of(field.flag)
            .map(|i| i.collect())
            .unwrap_or_default();
        // The values of one occurrence (`--proto a,b`) have consecutive
        // positions right after the flag's.
        for (value, index) in values.into_iter().zip(indices) {
            match out.last_mut() {
                Some(o)
                    if !o.from_env
                        && std::ptr::eq(o.field, field)
                        && o.at + o.values.len() + 1 == index =>
                {
                    o.values.push(value)
                }
                _ => out.push(Occurrence {
                    at: index - 1,
                    field,
                    values: vec![value],
                    from_env: false,
                }),
            }
        }
    }
    let family = FIELDS.iter().find(|f| f.flag == "family").expect("listed");
    for (id, _, name) in FAMILY_SHORTS {
        // A flag without a value is recorded at the position of the value
        // it stands for, right after its own.
        for index in matches.indices_of(id).into_iter().flatten() {
            out.push(Occurrence {
                at: index - 1,
                field: family,
                values: vec![(*name).to_owned()],
                from_env: false,
            });
        }
    }
    out.sort_by_key(|o| o.at);
    out
}

/// Checks one filter built from flags, naming the flag of a bad value.
/// Names are the agent's to judge (its host's iproute2 files may name more
/// than the built-in names): a word that names nothing here goes to the
/// agent, which refuses it if it names nothing there either.
fn check(filter: &Filter, prefix: &str) -> Result<(), String> {
    Filters::compile_in(std::slice::from_ref(filter), &[], Vocabulary::Deferred)
        .map(|_| ())
        .map_err(|e| {
            let flag = FIELDS
                .iter()
                .find(|f| f.api == e.field)
                .map_or(e.field, |f| f.flag);
            format!("{prefix}--{flag} {}: {}", e.value, e.reason)
        })
}

fn without_position(e: InvalidFilter) -> InvalidFilter {
    InvalidFilter {
        position: None,
        ..e
    }
}

/// One filter, or a list of them, in the API's JSON.
fn json_filters(text: &str) -> Result<Vec<Filter>, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let items: Vec<serde_json::Value> =
            serde_json::from_str(trimmed).map_err(|e| e.to_string())?;
        items
            .iter()
            .map(|item| protojson::from_json("routewatch.v1.Filter", &item.to_string()))
            .collect()
    } else {
        protojson::from_json("routewatch.v1.Filter", text).map(|f| vec![f])
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        filters: FilterArgs,
        targets: Vec<String>,
    }

    fn parse(args: &[&str]) -> Result<FilterArgs, String> {
        let argv = std::iter::once("routewatch").chain(args.iter().copied());
        Cli::try_parse_from(argv)
            .map(|c| c.filters)
            .map_err(|e| e.to_string())
    }

    fn filter(edit: impl FnOnce(&mut Filter)) -> Filter {
        let mut f = Filter::default();
        edit(&mut f);
        f
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn no_flags_no_filters() {
        assert!(parse(&["h:1"]).unwrap().is_empty());
    }

    #[test]
    fn flags_and_together_and_values_or() {
        let got = parse(&[
            "--proto",
            "bgp,static",
            "--within",
            "10.0.0.0/8",
            "--proto",
            "ospf",
        ])
        .unwrap();
        assert_eq!(
            got.allow,
            vec![filter(|f| {
                f.protocol = strings(&["bgp", "static", "ospf"]);
                f.within = strings(&["10.0.0.0/8"]);
            })]
        );
        assert!(got.deny.is_empty());
    }

    #[test]
    fn not_negates_exactly_the_next_flag() {
        let got = parse(&[
            "--not",
            "--proto",
            "kernel,boot",
            "--table",
            "main",
            "-6",
            "--not",
            "--dev=lo",
            "h:1",
            "--not",
            "-4",
        ])
        .unwrap();
        assert_eq!(
            got.allow,
            vec![filter(|f| {
                f.table = strings(&["main"]);
                f.family = strings(&["inet6"]);
            })]
        );
        assert_eq!(
            got.deny,
            vec![filter(|f| {
                f.protocol = strings(&["kernel", "boot"]);
                f.dev = strings(&["lo"]);
                f.family = strings(&["inet"]);
            })]
        );
    }

    #[test]
    fn a_dangling_not_is_an_error() {
        let e = parse(&["--proto", "bgp", "--not"]).unwrap_err();
        assert!(
            e.contains("--not must come right before a filter flag"),
            "{e}"
        );
        let e = parse(&["--not", "h:1", "--proto", "bgp"]).unwrap_err();
        assert!(e.contains("--not must come right before"), "{e}");
    }

    #[test]
    fn bad_values_name_the_flag() {
        let e = parse(&["--within", "10.1.2.3/8"]).unwrap_err();
        assert!(
            e.contains("--within 10.1.2.3/8: host bits set (did you mean 10.0.0.0/8?)"),
            "{e}"
        );
        let e = parse(&["--not", "--proto", "300"]).unwrap_err();
        assert!(e.contains("--not --proto 300: out of range (0-255)"), "{e}");
        let e = parse(&["--gateway-within", "x"]).unwrap_err();
        assert!(e.contains("--gateway-within x:"), "{e}");
    }

    #[test]
    fn names_unknown_here_are_left_to_the_agent() {
        let got = parse(&["--table", "blue", "--proto", "frr", "--vrf", "red"]).unwrap();
        assert_eq!(
            got.allow,
            vec![filter(|f| {
                f.table = strings(&["blue"]);
                f.protocol = strings(&["frr"]);
                f.vrf = strings(&["red"]);
            })]
        );
        let e = parse(&["--vrf", "a/b"]).unwrap_err();
        assert!(e.contains("--vrf a/b:"), "{e}");
    }

    #[test]
    fn whole_filters_as_json() {
        let got = parse(&[
            "--allow",
            r#"{"protocol":["bgp"]}"#,
            "--allow",
            r#"[{"table":["main"]},{"dev":["eth0"]}]"#,
            "--deny",
            r#"{"gatewayWithin":["10.0.0.0/8"]}"#,
            "--proto",
            "static",
        ])
        .unwrap();
        assert_eq!(got.allow.len(), 4, "{got:?}");
        assert_eq!(got.allow[0], filter(|f| f.protocol = strings(&["static"])));
        assert_eq!(
            got.deny,
            vec![filter(|f| f.gateway_within = strings(&["10.0.0.0/8"]))]
        );
        let e = parse(&["--deny", r#"{"within":["10.0.0.1/8"]}"#]).unwrap_err();
        assert!(e.contains(r#"within "10.0.0.1/8": host bits set"#), "{e}");
        let e = parse(&["--allow", r#"{"withn":[]}"#]).unwrap_err();
        assert!(e.contains("--allow"), "{e}");
    }
}
