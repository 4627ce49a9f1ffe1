//! The command line (SPEC §4): parsing and dispatch, one module per subcommand.
//!
//! Errors are reported here, at the edge, with their context; exit codes are 0 for success, 1
//! for a failure, 2 for a usage error or a command this version does not offer yet.

mod check_config;
mod privacy_statement;
mod purge;
mod report;
mod serve;
mod subject;
mod token;
mod user;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Settings;

#[derive(Parser)]
#[command(
    name = "zaal",
    version,
    about = "Zaal: self-hosted, privacy-first video conferencing",
    long_about = "Zaal: self-hosted, privacy-first video conferencing.\n\n\
        Without a command, `zaal` runs the server (`zaal serve`)."
)]
struct Cli {
    /// Configuration file (TOML, shaped like config/default.toml)
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default)
    Serve,
    /// Manage host accounts (the people who may create rooms)
    User {
        #[command(subcommand)]
        action: user::UserAction,
    },
    /// Mint a signed join link (JWT) for a reservation system
    Token {
        /// The name shown in the meeting
        #[arg(long)]
        user: String,
        /// The room it opens (default: any room)
        #[arg(long)]
        room: Option<String>,
        /// Join as moderator (and open the room if no host created it)
        #[arg(long)]
        moderator: bool,
        /// How long the link is valid
        #[arg(long, default_value = "2h")]
        ttl: String,
    },
    /// Apply log retention now
    Purge {
        /// Pretend it is this moment (RFC 3339), to verify retention
        #[arg(long)]
        now: Option<String>,
    },
    /// Data-subject requests: find or erase every record about a person
    Subject {
        #[command(subcommand)]
        action: SubjectAction,
    },
    /// Usage report: conferences, participants, durations, without identifiers
    Report {
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value = "json", value_parser = ["json", "csv"])]
        format: String,
        /// Group by day, week or month (default: usage.period)
        #[arg(long, value_parser = ["day", "week", "month"])]
        period: Option<String>,
    },
    /// Print the privacy statement served at /privacy
    PrivacyStatement {
        #[arg(long, default_value = "en", value_parser = ["nl", "en"])]
        lang: String,
        /// Show what changed since the previous version instead
        #[arg(long)]
        diff: bool,
    },
    /// Validate the configuration and print the effective values
    CheckConfig,
}

#[derive(Subcommand)]
enum SubjectAction {
    /// Print every retained record about a display name or an IP address
    Export(SubjectTarget),
    /// Erase every retained record about a display name or an IP address
    Erase(SubjectTarget),
}

#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct SubjectTarget {
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    ip: Option<String>,
}

/// Parses the command line and runs the command.
pub fn run() -> ExitCode {
    // Before any command creates a file: everything under data.dir and logs.dir is the
    // service's alone, whichever library writes it.
    crate::private_fs::restrict_umask();
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::CheckConfig = command {
        return check_config::run(cli.config.as_deref());
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("zaal: {e}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Serve => serve::run(settings),
        Command::User { action } => user::run(&settings, action),
        Command::PrivacyStatement { lang, diff } => privacy_statement::run(&settings, &lang, diff),
        Command::CheckConfig => unreachable!("handled above"),
        Command::Token {
            user,
            room,
            moderator,
            ttl,
        } => token::run(&settings, &user, room.as_deref(), moderator, &ttl),
        Command::Purge { now } => purge::run(&settings, now.as_deref()),
        Command::Subject { action } => match action {
            SubjectAction::Export(t) => {
                subject::run(&settings, false, t.name.as_deref(), t.ip.as_deref())
            }
            SubjectAction::Erase(t) => {
                subject::run(&settings, true, t.name.as_deref(), t.ip.as_deref())
            }
        },
        Command::Report {
            from,
            to,
            format,
            period,
        } => report::run(
            &settings,
            from.as_deref(),
            to.as_deref(),
            &format,
            period.as_deref(),
        ),
    }
}
