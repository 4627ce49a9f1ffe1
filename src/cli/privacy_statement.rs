//! `zaal privacy-statement`: the statement served at /privacy, as text, with the edition the
//! server would serve it as; `--diff`: what changed since the previous edition.
//!
//! It only reads the editions the server recorded: the server publishes, this command never
//! does (running it with a trial configuration must not move the date visitors see).

use std::process::ExitCode;

use crate::config::Settings;
use crate::privacy::statement::{self, Edition, Language};
use crate::store::{Store, StoredEdition};

pub fn run(settings: &Settings, lang: &str, show_diff: bool) -> ExitCode {
    let Some(language) = Language::parse(lang) else {
        eprintln!("zaal privacy-statement: --lang is nl or en");
        return ExitCode::from(2);
    };
    let editions = match Store::open_existing(&settings.data_dir) {
        Ok(Some(store)) => match store.statement_editions(2) {
            Ok(editions) => editions,
            Err(e) => {
                eprintln!("zaal privacy-statement: {e}");
                return ExitCode::FAILURE;
            }
        },
        Ok(None) => Vec::new(),
        Err(e) => {
            eprintln!("zaal privacy-statement: {e}");
            return ExitCode::FAILURE;
        }
    };
    let texts = statement::texts(settings);
    let today = time::OffsetDateTime::now_utc().date();
    let served = editions.first().filter(|e| e.digest == texts.digest);
    let current = match served {
        Some(e) => stored_edition(e).unwrap_or(Edition {
            number: e.number,
            date: today,
        }),
        None => Edition {
            number: editions.first().map_or(1, |e| e.number + 1),
            date: today,
        },
    };
    let statement = statement::compose(settings, language);
    if !show_diff {
        print!("{}", statement::render_text(&statement, Some(&current)));
        if served.is_none() && !editions.is_empty() {
            eprintln!(
                "zaal privacy-statement: this text is not served yet; the server publishes it as \
                 version {} when it starts with this configuration",
                current.number
            );
        }
        return ExitCode::SUCCESS;
    }
    let previous = if served.is_some() {
        editions.get(1)
    } else {
        editions.first()
    };
    let Some(previous) = previous else {
        println!(
            "This is the first version of the statement: there is nothing to compare it with."
        );
        return ExitCode::SUCCESS;
    };
    let label = |number: u32, day: String| match language {
        Language::English => format!("version {number} ({day})"),
        Language::Dutch => format!("versie {number} ({day})"),
    };
    let old_text = match language {
        Language::English => &previous.text_en,
        Language::Dutch => &previous.text_nl,
    };
    let new_text = match language {
        Language::English => &texts.english,
        Language::Dutch => &texts.dutch,
    };
    print!(
        "{}",
        statement::diff(
            old_text,
            new_text,
            &label(previous.number, previous.first_served.clone()),
            &label(current.number, current.date_iso()),
        )
    );
    ExitCode::SUCCESS
}

fn stored_edition(e: &StoredEdition) -> Option<Edition> {
    Edition::from_stored(e.number, &e.first_served)
}
