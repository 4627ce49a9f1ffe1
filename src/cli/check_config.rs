//! `zaal check-config`: validate and print the effective configuration, and warn about what
//! the privacy statement would still show as a placeholder.

use std::path::Path;
use std::process::ExitCode;

use crate::config::Settings;
use crate::privacy::statement::placeholders;

pub fn run(file: Option<&Path>) -> ExitCode {
    match Settings::load(file) {
        Ok(settings) => {
            print!("{}", settings.to_toml());
            for missing in placeholders(&settings) {
                eprintln!(
                    "zaal: warning: `{}` is empty: the privacy statement at /privacy shows a \
                     placeholder for {}",
                    missing.key, missing.what
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("zaal: configuration rejected: {e}");
            ExitCode::from(2)
        }
    }
}
