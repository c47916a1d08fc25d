//! Entry point: parse the command line, load config, start telemetry, run, map errors to exit
//! codes (64 = bad usage or config, 1 = runtime failure).

/// A line to standard error that cannot panic: `eprintln!` does when standard error fails (a
/// full disk, a file-size limit, a closed pipe), and there is nothing better to do then.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// [`say!`] to standard output.
macro_rules! say_out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

use clap::Parser as _;
use hookgate::cli::{Cli, Command};
use hookgate::config::{AuthConfig, Config, TelemetryConfig};
use hookgate::huge_pages::HugePages;
use hookgate::parse::Catalog;
use tokio_util::sync::CancellationToken;

const EX_USAGE: u8 = 64;

/// mimalloc serves the many small, short-lived allocations of parse and normalize faster than
/// the system allocator (issue #7; `cargo bench --bench parse`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // First, before the allocations worth having small pages for (see src/huge_pages.rs).
    let huge_pages = hookgate::huge_pages::keep_off();
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Serve { config } => serve(&config, &huge_pages),
        Command::Parse {
            vendor,
            parsers_dir,
            headers,
            received_at_ms,
            files,
        } => parse(
            &vendor,
            parsers_dir.as_deref(),
            &headers,
            &files,
            received_at_ms,
        ),
        Command::Demo { port, output } => demo(port, &output, &huge_pages),
    }
}

fn load(path: &Path) -> Result<(Config, Catalog), String> {
    hookgate::app::load_config(path)
}

fn check(path: &Path) -> ExitCode {
    match load(path) {
        Ok((config, catalog)) => match hookgate::app::build_runtime(&config, &catalog) {
            Ok(runtime) => {
                // The certificate and key are read and matched as `serve` and a reload do.
                if let Some(Err(e)) = config
                    .listener
                    .tls
                    .as_ref()
                    .map(hookgate::tls::server_config)
                {
                    say!("{}: listener.tls: {e}", path.display());
                    return ExitCode::from(EX_USAGE);
                }
                // `serve` warns through its log; `check` has none, so it says so itself.
                let open = config
                    .sources
                    .iter()
                    .filter(|s| s.auth.iter().all(|a| matches!(a, AuthConfig::None)));
                for source in open {
                    say!(
                        "warning: source {:?} accepts UNAUTHENTICATED requests (auth kind = \"none\")",
                        source.name
                    );
                }
                if let Some(w) = hookgate::sink::jsonl::durability_warning(&config) {
                    say!("warning: {w}");
                }
                if config.delivery_mode() == hookgate::config::DeliveryMode::Spool {
                    if let Some(w) = hookgate::spool::volume::warning(&config.spool) {
                        say!("warning: {w}");
                    }
                }
                say_out!(
                    "{}: ok ({} sources)",
                    path.display(),
                    runtime.routes.sources().count()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                say!("{}: {e:#}", path.display());
                ExitCode::from(EX_USAGE)
            }
        },
        Err(e) => {
            say!("{e}");
            ExitCode::from(EX_USAGE)
        }
    }
}

fn serve(path: &Path, huge_pages: &HugePages) -> ExitCode {
    let (config, catalog) = match load(path) {
        Ok(pair) => pair,
        Err(e) => {
            say!("{e}");
            return ExitCode::from(EX_USAGE);
        }
    };
    run_blocking(config, catalog, huge_pages)
}

fn run_blocking(config: Config, catalog: Catalog, huge_pages: &HugePages) -> ExitCode {
    // Before any thread starts: threads inherit the policy (see src/cpu_scheduling.rs).
    let scheduling = hookgate::cpu_scheduling::apply(config.process.cpu_scheduling);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            say!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Before the first log line: a log already at the file-size limit then fails a write,
    // not the process (src/file_size_limit.rs).
    {
        let _inside = runtime.enter();
        hookgate::file_size_limit::survive();
    }
    // Held to the end of the run: dropped, it writes the log lines still queued.
    let _log = hookgate::telemetry::init(&config.telemetry);
    huge_pages.log();
    scheduling.log();
    let result = runtime.block_on(async move {
        let public = hookgate::listener::bind(config.listener.address, config.listener.backlog)
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot bind listener.address {}: {e}",
                    config.listener.address
                )
            })?;
        let admin = tokio::net::TcpListener::bind(config.admin.address)
            .await
            .map_err(|e| {
                anyhow::anyhow!("cannot bind admin.address {}: {e}", config.admin.address)
            })?;
        let shutdown = CancellationToken::new();
        hookgate::shutdown::on_signal(shutdown.clone());
        hookgate::run(config, catalog, public, admin, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "hookgate failed");
            say!("hookgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn parse(
    vendor: &str,
    dir: Option<&Path>,
    headers: &[String],
    files: &[std::path::PathBuf],
    received_at_ms: Option<i64>,
) -> ExitCode {
    // A payload for the parser tool: capped at 64 MiB so a wrong pipe cannot eat memory.
    const MAX_PAYLOAD: u64 = 64 * 1024 * 1024;
    let stdin = [std::path::PathBuf::from("-")];
    let files = if files.is_empty() { &stdin[..] } else { files };
    let mut bodies = Vec::with_capacity(files.len());
    for p in files {
        let mut body = Vec::new();
        let read = if p == Path::new("-") {
            std::io::stdin().take(MAX_PAYLOAD).read_to_end(&mut body)
        } else {
            std::fs::File::open(p).and_then(|f| f.take(MAX_PAYLOAD).read_to_end(&mut body))
        };
        if let Err(e) = read {
            say!("cannot read payload {}: {e}", p.display());
            return ExitCode::from(EX_USAGE);
        }
        bodies.push(body);
    }
    match hookgate::preview::run(vendor, dir, headers, bodies, received_at_ms) {
        Ok(lines) => {
            // `println!` panics when stdout is closed (`hookgate parse … | head`); a reader
            // that stopped reading is not an error of the parse.
            let mut out = std::io::stdout().lock();
            for line in lines {
                match writeln!(out, "{line}") {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
                    Err(e) => {
                        say!("cannot write the events: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            say!("{e}");
            ExitCode::from(EX_USAGE)
        }
    }
}

fn demo(port: u16, output: &Path, huge_pages: &HugePages) -> ExitCode {
    let demo = hookgate::demo::Demo::generate(port, output);
    let catalog = match Catalog::load(None) {
        Ok(c) => c,
        Err(e) => {
            say!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let config = match Config::from_toml(&demo.config_toml, Path::new("<demo>"), &catalog.names()) {
        Ok(c) => c,
        Err(e) => {
            say!("demo config is invalid (a bug): {e}");
            return ExitCode::FAILURE;
        }
    };
    say!("{}", demo.instructions);
    let _ = TelemetryConfig::default();
    run_blocking(config, catalog, huge_pages)
}
