//! The `sluice` command line: argument groups, logging and the subcommands.

mod build;
mod cli;
mod controller;
mod logging;
mod netpol;
mod plan;
mod progress;
mod server;

use std::process::ExitCode;

use clap::Parser;

pub use cli::Cli;

/// Entry point of the binary.
pub fn main() -> ExitCode {
    // The sandboxed Jsonnet evaluator is this binary too; it speaks JSON on stdin/stdout.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == sluice_render::EVAL_SUBCOMMAND)
    {
        return ExitCode::from(u8::try_from(sluice_render::eval_child_main()).unwrap_or(1));
    }
    let cli = Cli::parse();
    logging::init(&cli.logging);
    // `netpol` reports bad input with exit code 2 (1 is lint's "findings at level error").
    let failure = match cli.command {
        cli::Command::Netpol(_) => ExitCode::from(2),
        _ => ExitCode::FAILURE,
    };
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", one_line(&error));
            failure
        }
    }
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        cli::Command::Build(args) => build::run(*args, &cli.logging).map(|()| ExitCode::SUCCESS),
        cli::Command::Netpol(command) => netpol::run(command),
        cli::Command::Plan(args) => plan::run(*args),
        cli::Command::Controller(args) => controller::run(*args),
        cli::Command::Server(args) => server::run_server(*args),
        cli::Command::RepoServer(args) => server::run_repo_server(*args),
        cli::Command::Rbac(command) => server::run_rbac(command),
        cli::Command::Crds => {
            print!("{}", sluice_api::crds_yaml());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The error and its causes on one line (the causes are usually already in the message).
fn one_line(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text.replace('\n', " ")
}
