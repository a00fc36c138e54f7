//! Log setup: plain or JSON lines on stderr, never stdout.

use std::io::IsTerminal;

use clap::{Args, ValueEnum};
use tracing_subscriber::EnvFilter;

/// Log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line with `level`, `message`, `security` and `CWE` fields.
    Json,
}

/// Logging flags shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct LoggingArgs {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "plain",
        env = "SLUICE_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    /// Log level (error, warn, info, debug, trace) or a tracing filter directive.
    #[arg(long, global = true, default_value = "info", env = "SLUICE_LOG_LEVEL")]
    pub log_level: String,
}

pub fn init(args: &LoggingArgs) {
    let filter = EnvFilter::try_new(&args.log_level).unwrap_or_else(|_| {
        eprintln!(
            "warning: invalid --log-level {:?}; using info",
            args.log_level
        );
        EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    match args.log_format {
        LogFormat::Plain => builder.without_time().init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}
