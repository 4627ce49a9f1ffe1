//! `zaal privacy-statement`: the statement served at /privacy, as text.

use std::process::ExitCode;

use crate::config::Settings;
use crate::privacy::statement::{Language, render_text};

pub fn run(settings: &Settings, lang: &str) -> ExitCode {
    let Some(language) = Language::parse(lang) else {
        eprintln!("zaal privacy-statement: --lang is nl or en");
        return ExitCode::from(2);
    };
    print!("{}", render_text(settings, language));
    ExitCode::SUCCESS
}
