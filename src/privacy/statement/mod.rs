//! The privacy statement, generated from the running configuration and from what the code does
//! (SPEC P13).
//!
//! Because it is rendered from the same settings the server enforces, it cannot drift from the
//! truth: change a retention period, the IP mode or the legal basis and exactly the sentences
//! that depend on it change with it; a safeguard is listed only while it is on. Each section and
//! paragraph has a stable key, the same in Dutch and English, so tests can hold the two languages
//! to the same content and see which sentences a setting moves. The text carries its edition
//! (number and the day it was first served, kept by the store), so a visitor sees when it last
//! changed. This module only composes and renders; it never reads files or the database.

mod edition;
mod processing;
mod responsible;
mod rights;
mod safeguards;
#[cfg(test)]
mod tests;

use std::time::Duration;

use sha2::Digest;

use crate::config::Settings;

pub use edition::{Edition, diff, format_date, iso_day};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Dutch,
    English,
}

impl Language {
    pub const ALL: [Language; 2] = [Language::English, Language::Dutch];

    pub fn parse(code: &str) -> Option<Self> {
        match code {
            "nl" => Some(Language::Dutch),
            "en" => Some(Language::English),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Language::Dutch => "nl",
            Language::English => "en",
        }
    }
}

/// A duration as a reader would say it: "14 days", "24 uur" (one day is said in hours, as
/// retention periods of a day are).
pub fn human_duration(d: Duration, language: Language) -> String {
    let secs = d.as_secs();
    let (n, unit_en, unit_nl) = if secs.is_multiple_of(86_400) && secs > 86_400 {
        (secs / 86_400, ("day", "days"), ("dag", "dagen"))
    } else if secs.is_multiple_of(3_600) {
        (secs / 3_600, ("hour", "hours"), ("uur", "uur"))
    } else if secs.is_multiple_of(60) {
        (secs / 60, ("minute", "minutes"), ("minuut", "minuten"))
    } else {
        (secs, ("second", "seconds"), ("seconde", "seconden"))
    };
    let (one, many) = match language {
        Language::English => unit_en,
        Language::Dutch => unit_nl,
    };
    format!("{n} {}", if n == 1 { one } else { many })
}

/// One paragraph, under a key that names what it says (the same key in both languages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paragraph {
    pub key: &'static str,
    pub text: String,
}

/// One section: a heading and its paragraphs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub key: &'static str,
    pub heading: String,
    pub paragraphs: Vec<Paragraph>,
}

impl Section {
    fn new(key: &'static str, heading: String) -> Self {
        Self {
            key,
            heading,
            paragraphs: Vec::new(),
        }
    }

    fn say(&mut self, key: &'static str, text: String) {
        self.paragraphs.push(Paragraph { key, text });
    }
}

/// The statement in one language, before its edition is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub language: Language,
    pub title: String,
    pub sections: Vec<Section>,
}

/// What the section writers share: the settings and the language, and the one way to say a
/// thing in both languages.
struct Writer<'a> {
    settings: &'a Settings,
    language: Language,
}

impl Writer<'_> {
    fn pick(&self, english: String, dutch: String) -> String {
        match self.language {
            Language::English => english,
            Language::Dutch => dutch,
        }
    }

    fn heading(&self, english: &str, dutch: &str) -> String {
        self.pick(english.into(), dutch.into())
    }

    fn duration(&self, d: Duration) -> String {
        human_duration(d, self.language)
    }

    /// An operator's value, or the placeholder that says it is missing (see [`placeholders`]).
    fn or_unset(&self, value: &str) -> String {
        if value.is_empty() {
            self.heading(
                "(not configured by the operator)",
                "(niet ingesteld door de beheerder)",
            )
        } else {
            value.to_string()
        }
    }

    /// The organisation by name, or a description when no name is configured.
    fn organisation(&self) -> String {
        let controller = &self.settings.privacy.controller;
        if controller.is_empty() {
            self.heading(
                "the organisation that runs this service",
                "de organisatie die deze dienst aanbiedt",
            )
        } else {
            controller.clone()
        }
    }

    /// Where visitors write: the contact address, or the placeholder.
    fn contact(&self) -> String {
        self.or_unset(&self.settings.privacy.contact_email)
    }
}

/// The statement in `language`, composed from `settings`.
pub fn compose(settings: &Settings, language: Language) -> Statement {
    let w = Writer { settings, language };
    Statement {
        language,
        title: w.heading("Privacy statement", "Privacyverklaring"),
        sections: vec![
            responsible::controller(&w),
            processing::what_and_how_long(&w),
            processing::legal_basis(&w),
            processing::media(&w),
            processing::storage(&w),
            safeguards::security(&w),
            processing::browser(&w),
            safeguards::disclosure(&w),
            rights::rights(&w),
            responsible::complaints(&w),
            rights::changes(&w),
        ],
    }
}

/// The texts of the statement in English and Dutch without their edition, and the digest that
/// tells one text from another (the store keeps an edition per digest).
pub struct Texts {
    pub english: String,
    pub dutch: String,
    pub digest: String,
}

pub fn texts(settings: &Settings) -> Texts {
    let english = render_text(&compose(settings, Language::English), None);
    let dutch = render_text(&compose(settings, Language::Dutch), None);
    let mut hash = sha2::Sha256::new();
    hash.update(english.as_bytes());
    hash.update([0]);
    hash.update(dutch.as_bytes());
    let digest = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Texts {
        english,
        dutch,
        digest,
    }
}

/// The statement as served: its edition and its page in each language, rendered once at
/// start-up (the settings do not change while the server runs).
#[derive(Debug, Clone)]
pub struct Published {
    pub edition: Edition,
    english: String,
    dutch: String,
}

impl Published {
    pub fn new(settings: &Settings, edition: Edition) -> Self {
        let page = |language| render_html(&compose(settings, language), &edition);
        Self {
            edition,
            english: page(Language::English),
            dutch: page(Language::Dutch),
        }
    }

    pub fn page(&self, language: Language) -> &str {
        match language {
            Language::English => &self.english,
            Language::Dutch => &self.dutch,
        }
    }
}

/// A setting the statement needs and does not have: it would show a placeholder instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    pub key: &'static str,
    pub what: &'static str,
}

/// The placeholders the statement would show with these settings (`zaal check-config` and
/// `zaal serve` warn about each).
pub fn placeholders(settings: &Settings) -> Vec<Placeholder> {
    let p = &settings.privacy;
    let mut missing = Vec::new();
    if p.controller.is_empty() {
        missing.push(Placeholder {
            key: "privacy.controller",
            what: "the organisation responsible for the processing",
        });
    }
    if p.contact_email.is_empty() {
        missing.push(Placeholder {
            key: "privacy.contact_email",
            what: "the address visitors write to about their data",
        });
    }
    missing
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The statement as a page in the web client's style (its stylesheet and header).
pub fn render_html(statement: &Statement, edition: &Edition) -> String {
    let language = statement.language;
    let (other_code, other_name) = match language {
        Language::Dutch => ("en", "English"),
        Language::English => ("nl", "Nederlands"),
    };
    let home = match language {
        Language::Dutch => "Naar de startpagina",
        Language::English => "Back to the start page",
    };
    let mut body = String::new();
    for section in &statement.sections {
        body.push_str(&format!(
            "<section class=\"card\" id=\"{}\">\n<h2>{}</h2>\n",
            section.key,
            escape(&section.heading)
        ));
        for paragraph in &section.paragraphs {
            body.push_str(&format!("<p>{}</p>\n", escape(&paragraph.text)));
        }
        body.push_str("</section>\n");
    }
    format!(
        "<!doctype html>\n<html lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <title>{title} · Zaal</title>\n\
         <link rel=\"icon\" href=\"/assets/icon.svg\" type=\"image/svg+xml\">\n\
         <link rel=\"stylesheet\" href=\"/assets/css/zaal.css\">\n</head>\n\
         <body class=\"page\">\n<header class=\"site-header\">\n\
         <a class=\"brand\" href=\"/\"><img src=\"/assets/icon.svg\" alt=\"\" width=\"28\" height=\"28\"><span>Zaal</span></a>\n\
         <a href=\"/privacy?lang={other_code}\" lang=\"{other_code}\" hreflang=\"{other_code}\">{other_name}</a>\n\
         </header>\n<main id=\"main\" class=\"container narrow\">\n<h1>{title}</h1>\n\
         <p class=\"edition\"><time datetime=\"{date}\">{edition_line}</time></p>\n{body}\
         </main>\n<footer class=\"site-footer\"><a href=\"/\">{home}</a></footer>\n</body>\n</html>\n",
        lang = language.code(),
        title = escape(&statement.title),
        date = edition.date_iso(),
        edition_line = escape(&edition.line(language)),
    )
}

/// The statement as plain text, for `zaal privacy-statement`; without an edition, the text
/// whose digest identifies it.
pub fn render_text(statement: &Statement, edition: Option<&Edition>) -> String {
    let title = &statement.title;
    let mut out = format!("{title}\n{}\n", "=".repeat(title.chars().count()));
    if let Some(edition) = edition {
        out.push_str(&format!("\n{}\n", edition.line(statement.language)));
    }
    for section in &statement.sections {
        out.push_str(&format!("\n{}\n", section.heading));
        for paragraph in &section.paragraphs {
            out.push_str(&format!("\n{}\n", paragraph.text));
        }
    }
    out
}
