//! The statement's edition line ("Version 3, last changed on 3 December 2026") and the
//! difference between two editions' texts.

use time::Date;

use super::Language;

/// Which text a visitor reads: its number and the UTC day it was first served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edition {
    pub number: u32,
    pub date: Date,
}

const ISO_DAY: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

impl Edition {
    /// An edition from the store's day (`YYYY-MM-DD`).
    pub fn from_stored(number: u32, day: &str) -> Option<Self> {
        Some(Self {
            number,
            date: Date::parse(day, ISO_DAY).ok()?,
        })
    }

    pub fn date_iso(&self) -> String {
        iso_day(self.date)
    }

    pub fn line(&self, language: Language) -> String {
        let date = format_date(self.date, language);
        match language {
            Language::English => format!("Version {}, last changed on {date}.", self.number),
            Language::Dutch => format!("Versie {}, laatst gewijzigd op {date}.", self.number),
        }
    }
}

/// A day as the store keeps it.
pub fn iso_day(date: Date) -> String {
    date.format(ISO_DAY)
        .expect("a calendar date always formats as YYYY-MM-DD")
}

/// A day as a reader writes it: "3 December 2026", "3 december 2026".
pub fn format_date(date: Date, language: Language) -> String {
    const ENGLISH: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DUTCH: [&str; 12] = [
        "januari",
        "februari",
        "maart",
        "april",
        "mei",
        "juni",
        "juli",
        "augustus",
        "september",
        "oktober",
        "november",
        "december",
    ];
    let month = usize::from(u8::from(date.month())) - 1;
    let name = match language {
        Language::English => ENGLISH[month],
        Language::Dutch => DUTCH[month],
    };
    format!("{} {name} {}", date.day(), date.year())
}

/// What changed from `old` to `new`, line by line, as a unified diff with a few lines of
/// context; `old_label` and `new_label` head it.
pub fn diff(old: &str, new: &str, old_label: &str, new_label: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(1)
        .header(old_label, new_label)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn editions_read_naturally_in_both_languages() {
        let edition = Edition::from_stored(3, "2026-12-03").unwrap();
        assert_eq!(
            edition.line(Language::English),
            "Version 3, last changed on 3 December 2026."
        );
        assert_eq!(
            edition.line(Language::Dutch),
            "Versie 3, laatst gewijzigd op 3 december 2026."
        );
        assert_eq!(edition.date_iso(), "2026-12-03");
        assert_eq!(iso_day(date!(2027 - 01 - 09)), "2027-01-09");
        assert!(Edition::from_stored(1, "3 December").is_none());
    }

    #[test]
    fn a_diff_shows_only_what_changed() {
        let old = "Title\n\nkept for 7 days.\n\nsame\n";
        let new = "Title\n\nkept for 4 days.\n\nsame\n";
        let shown = diff(old, new, "version 1", "version 2");
        assert!(
            shown.starts_with("--- version 1\n+++ version 2\n"),
            "{shown}"
        );
        assert!(
            shown.contains("-kept for 7 days.\n+kept for 4 days.\n"),
            "{shown}"
        );
        assert!(diff(old, old, "a", "b").is_empty());
    }
}
