//! `zaal check-config`: validate and print the effective configuration.

use std::path::Path;
use std::process::ExitCode;

use crate::config::Settings;

pub fn run(file: Option<&Path>) -> ExitCode {
    match Settings::load(file) {
        Ok(settings) => {
            print!("{}", settings.to_toml());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("zaal: configuration rejected: {e}");
            ExitCode::from(2)
        }
    }
}
