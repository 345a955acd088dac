//! routewatch: follow routing changes on this host or across a fleet.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use routewatch_client::cli::Cli;
use routewatch_client::error::exit;
use tokio_util::sync::CancellationToken;

/// mimalloc: the receiving thread allocates each event's strings and the
/// printing thread frees them, which with glibc's allocator contended for
/// its arenas' locks. A full table's `show` took 0.6 s less CPU (text:
/// 1.9 to 1.2 s; bench/README.md, fulltable).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // No transparent huge pages: mimalloc asks for them, and the kernel
    // then zeroes 2 MiB for each page it faults in again after mimalloc
    // handed it back; that was half of a full table's `show -o json`
    // (bench/README.md, fulltable). A failure changes nothing else.
    // SAFETY: prctl with PR_SET_THP_DISABLE and plain integer arguments.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let matches = match Cli::command().try_get_matches_from(&argv) {
        Ok(m) => m,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            eprint!(
                "{}",
                routewatch_client::usage::explain(&Cli::command(), &e, &argv)
            );
            return ExitCode::from(exit::USAGE);
        }
    };
    let subcommand = matches.subcommand_name().map(str::to_owned);
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => {
            let text = routewatch_client::usage::explain(&Cli::command(), &e, &argv);
            eprintln!("{}", text.trim_end());
            return ExitCode::from(exit::USAGE);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ROUTEWATCH_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("routewatch: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let result = runtime.block_on(async move {
        tokio::spawn(async move {
            shutdown_signal().await;
            stop.cancel();
        });
        routewatch_client::run(cli.command, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = e.exit_code();
            // Output piped into `head` and closed is not an error.
            if code != exit::OK {
                eprintln!("routewatch: {e}");
            }
            if code == exit::USAGE {
                let usage =
                    routewatch_client::usage::usage_of(Cli::command(), subcommand.as_deref());
                eprintln!("\n{usage}");
            }
            ExitCode::from(code)
        }
    }
}

/// Ctrl-C or SIGTERM: either ends a `tail` cleanly (and saves its cursors).
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            tracing::warn!("cannot handle SIGTERM ({e}); only Ctrl-C stops cleanly");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
