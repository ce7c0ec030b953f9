//! The `shardmq` binary: parses the command line and runs the subcommand.

use clap::Parser;
use shardmq::cli::{Cli, Command};
use shardmq::config::LogFormat;

/// Prints a command's output; a closed stdout (`| head`) is not an error worth a panic.
fn print(out: String) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{out}");
}

/// `shardmq broker`: prints the config, or runs with the config file and environment layered
/// under the flags.
fn broker(args: shardmq::config::BrokerArgs) -> Result<(), String> {
    if args.print_config {
        print(shardmq::config_file::print_config());
        return Ok(());
    }
    let cli: Vec<std::ffi::OsString> = std::env::args_os()
        .skip_while(|a| a != "broker")
        .skip(1)
        .collect();
    let args = shardmq::config_file::resolve(args, cli).map_err(|e| e.to_string())?;
    init_logging(args.log.as_deref(), args.log_format)?;
    shardmq::boot::run_broker(args).map_err(|e| e.to_string())
}

/// Structured logs on stderr: `filter` (or SHARDMQ_LOG, or `info`), as text or JSON lines.
fn init_logging(filter: Option<&str>, format: LogFormat) -> Result<(), String> {
    use tracing_subscriber::EnvFilter;
    let filter = match filter {
        Some(directives) => EnvFilter::try_new(directives)
            .map_err(|e| format!("--log {directives:?} (or SHARDMQ_LOG): {e}"))?,
        None => EnvFilter::try_from_env("SHARDMQ_LOG").unwrap_or_else(|_| "info".into()),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|e| format!("cannot set up logging: {e}"))
}

fn main() {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Broker(_)) {
        // The broker sets up its logging once its config is read.
        let _ = init_logging(None, LogFormat::Text);
    }
    let result = match cli.command {
        Command::Broker(args) => broker(args),
        Command::Namesrv(args) => shardmq::namesrv::standalone::run_until_signalled(args),
        Command::Admin(args) => match shardmq::admin::run(args) {
            Ok(out) => {
                print(out);
                Ok(())
            }
            Err(err) => {
                if let Some(output) = err.output() {
                    print(output.to_string());
                }
                eprintln!("error: {err}");
                std::process::exit(err.exit_code());
            }
        },
        Command::Tune(args) => shardmq::tune::run(args).map(print),
        Command::Bench(args) => {
            shardmq::memory::keep_large_allocations_on_the_heap(0);
            shardmq_bench::run(&(*args).into_command())
                .map(drop)
                .map_err(|e| e.to_string())
        }
    };
    if let Err(message) = result {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}
