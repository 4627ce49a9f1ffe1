//! `zaal user add|list|remove|passwd NAME`: host accounts.
//!
//! Passwords are read from a prompt without echo when stdin is a terminal, otherwise from the
//! first line of stdin (for scripts). They are never printed, logged or put on the command line.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use clap::Subcommand;

use crate::config::Settings;
use crate::store::{HostName, MIN_PASSWORD_LEN, Store};

#[derive(Subcommand)]
pub enum UserAction {
    /// Create a host account (password from a prompt or stdin)
    Add { name: String },
    /// List host accounts
    List,
    /// Remove a host account and end its sessions
    Remove { name: String },
    /// Set a new password (from a prompt or stdin) and end the host's sessions
    Passwd { name: String },
}

fn read_password() -> Result<String, String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!(
            "Password (at least {MIN_PASSWORD_LEN} characters): "
        ))
        .map_err(|e| format!("cannot read the password: {e}"))?;
        let second = rpassword::prompt_password("Repeat the password: ")
            .map_err(|e| format!("cannot read the password: {e}"))?;
        if first != second {
            return Err("the passwords differ".into());
        }
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}

fn host_name(name: &str) -> Result<HostName, String> {
    HostName::parse(name).map_err(|e| e.to_string())
}

pub fn run(settings: &Settings, action: UserAction) -> ExitCode {
    let result = (|| -> Result<(), String> {
        let store = Store::open(&settings.data_dir).map_err(|e| e.to_string())?;
        match action {
            UserAction::Add { name } => {
                let name = host_name(&name)?;
                let password = read_password()?;
                store
                    .add_host(&name, &password)
                    .map_err(|e| e.to_string())?;
                println!("Host `{name}` created.");
            }
            UserAction::List => {
                for host in store.list_hosts().map_err(|e| e.to_string())? {
                    println!("{}", host.name);
                }
            }
            UserAction::Remove { name } => {
                let name = host_name(&name)?;
                store.remove_host(&name).map_err(|e| e.to_string())?;
                println!("Host `{name}` removed.");
            }
            UserAction::Passwd { name } => {
                let name = host_name(&name)?;
                let password = read_password()?;
                store
                    .set_password(&name, &password)
                    .map_err(|e| e.to_string())?;
                println!("Password of `{name}` changed; their sessions have ended.");
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zaal user: {e}");
            ExitCode::FAILURE
        }
    }
}
