//! The `shardmq` binary: parses the command line and runs the subcommand.

use clap::Parser;
use shardmq::cli::{Cli, Command};

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
    shardmq::boot::run_broker(args).map_err(|e| e.to_string())
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SHARDMQ_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
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
            shardmq::boot::keep_large_allocations_on_the_heap();
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
