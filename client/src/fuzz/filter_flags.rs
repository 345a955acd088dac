//! The filter flags of `tail` and `show`: any command line is parsed
//! without a panic, and what is accepted compiles as the agent will
//! compile it.

use clap::Parser;
use proptest::prelude::*;
use routewatch_proto::filter::{Filters, Vocabulary};
use routewatch_proto::fuzzing::{self, bounded};

use crate::filter_args::FilterArgs;

#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    filters: FilterArgs,
    targets: Vec<String>,
}

const FLAGS: &[&str] = &[
    "--family",
    "--table",
    "--proto",
    "--protocol",
    "--type",
    "--scope",
    "--prefix",
    "--within",
    "--contains",
    "--gateway-within",
    "--dev",
    "--vrf",
    "--metric",
    "--object",
    "--netns",
    "--action",
    "--origin",
    "--not",
    "-4",
    "-6",
    "-46",
    "--allow",
    "--deny",
    "--",
];

const VALUES: &[&str] = &[
    "",
    "main",
    "local",
    "1000",
    "0x10",
    "4294967296",
    "bgp",
    "bgp,static",
    ",",
    "inet",
    "inet6",
    "10.0.0.0/8",
    "10.0.0.1/8",
    "::/0",
    "default",
    "eth0",
    "a/b",
    "5-",
    "5-3",
    "-",
    "route",
    "add",
    "dump",
    r#"{"protocol":["bgp"]}"#,
    r#"[{"table":["main"]},{"dev":["eth0"]}]"#,
    r#"{"within":["10.0.0.1/8"]}"#,
    r#"{"metric":["1-2"],"not":1}"#,
    "[]",
    "[[]]",
    "{}",
    "null",
    "[{",
];

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(FLAGS).prop_map(str::to_owned),
        4 => proptest::sample::select(VALUES).prop_map(str::to_owned),
        1 => (proptest::sample::select(FLAGS), proptest::sample::select(VALUES))
            .prop_map(|(f, v)| format!("{f}={v}")),
        1 => proptest::collection::vec(any::<char>(), 0..10).prop_map(String::from_iter),
    ]
}

proptest! {
    #![proptest_config(fuzzing::config(1000))]

    /// Any command line is accepted or refused without a panic; the
    /// filters accepted compile (names the agent may know are left to it).
    #[test]
    fn fuzz_filter_flags(args in proptest::collection::vec(token(), 0..8)) {
        let argv: Vec<&str> = std::iter::once("routewatch").chain(args.iter().map(String::as_str)).collect();
        let input = argv.join("\0").into_bytes();
        if let Ok(cli) = bounded(&input, || Cli::try_parse_from(&argv)) {
            let f = cli.filters;
            prop_assert!(
                Filters::compile_in(&f.allow, &f.deny, Vocabulary::Deferred).is_ok(),
                "{:?} accepted {:?}", argv, f
            );
        }
    }
}
