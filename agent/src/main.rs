//! routewatch-agent: serves this host's routing changes over gRPC.

use clap::Parser;
use routewatch_agent::cli::Cli;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ROUTEWATCH_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    // One thread: the agent's work per change is a few microseconds, so one
    // core serves the kernel's fastest churn with room to spare, and keeping
    // the source, the sessions and the gRPC connections on the same thread
    // saves the cross-thread wake-ups that would otherwise cost more than
    // the work itself.
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| Ok(rt.block_on(routewatch_agent::run(cli.config, shutdown_signal()))?));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let e: &(dyn std::error::Error + 'static) = e.as_ref();
            eprintln!("routewatch-agent: {}", routewatch_agent::error::chain(e));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
