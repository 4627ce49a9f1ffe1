//! The privacy statement, generated from the running configuration (SPEC P13).
//!
//! Because it is rendered from the same settings the server enforces, it cannot drift from the
//! truth: change a retention period or the IP mode and the statement changes with it. Served at
//! `/privacy` and printed by `zaal privacy-statement`, in Dutch and English.

use std::time::Duration;

use crate::config::{IpMode, Settings};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Dutch,
    English,
}

impl Language {
    pub fn parse(code: &str) -> Option<Self> {
        match code {
            "nl" => Some(Language::Dutch),
            "en" => Some(Language::English),
            _ => None,
        }
    }

    fn code(self) -> &'static str {
        match self {
            Language::Dutch => "nl",
            Language::English => "en",
        }
    }
}

/// A duration as a reader would say it: "14 days", "24 uur".
pub fn human_duration(d: Duration, language: Language) -> String {
    let secs = d.as_secs();
    let (n, unit_en, unit_nl) = if secs.is_multiple_of(86_400) {
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

/// One section: a heading and its paragraphs.
struct Section {
    heading: String,
    paragraphs: Vec<String>,
}

fn sections(settings: &Settings, language: Language) -> (String, Vec<Section>) {
    let d = |duration| human_duration(duration, language);
    let r = &settings.retention;
    let p = &settings.privacy;
    let or_unset = |value: &str, unset: &str| {
        if value.trim().is_empty() {
            unset.to_string()
        } else {
            value.trim().to_string()
        }
    };
    match language {
        Language::English => {
            let ip = match p.ip_mode {
                IpMode::Full => "your full IP address".to_string(),
                IpMode::Truncated => {
                    "a shortened form of your IP address (the last part removed: IPv4 /24, IPv6 /48)"
                        .to_string()
                }
                IpMode::None => "no IP address at all".to_string(),
            };
            let names = if p.log_names {
                format!(
                    "Your display name may also appear in the technical log, kept for {} to resolve problems.",
                    d(r.technical)
                )
            } else {
                "Your display name is never written to any log.".to_string()
            };
            let unset = "(not configured by the operator)";
            (
                "Privacy statement".into(),
                vec![
                    Section {
                        heading: "Who is responsible".into(),
                        paragraphs: vec![
                            format!("Controller: {}.", or_unset(&p.controller, unset)),
                            format!("Contact: {}.", or_unset(&p.contact_email, unset)),
                            format!("Data-protection officer: {}.", or_unset(&p.dpo, unset)),
                        ],
                    },
                    Section {
                        heading: "What is processed, and for how long".into(),
                        paragraphs: vec![
                            format!("Requests to this server are logged with {ip}, the page requested, the result and the time, and kept for {}.", d(r.access)),
                            format!("Your display name is shown only to the participants of the same meeting and is forgotten when the meeting ends. {names}"),
                            format!("Each meeting and each participant gets a random identifier. These identifiers, the room name, and when people joined and left are kept for {} to run and count the service; they contain no name and no address.", d(r.focus)),
                            format!("Technical data about the media connection (its state, bit rates, packet loss), by participant identifier only, is kept for {}.", d(r.bridge)),
                            "Usage is counted (how many meetings, with how many people, how long) without any identifier, name, room name or address.".into(),
                        ],
                    },
                    Section {
                        heading: "Audio and video".into(),
                        paragraphs: vec![
                            "Audio and video are never recorded or stored. They are encrypted on every connection (DTLS-SRTP), decrypted only inside this server to be passed on, and sent only to the participants of the same meeting.".into(),
                            "Camera and microphone are optional: you can join with neither.".into(),
                        ],
                    },
                    Section {
                        heading: "Your browser".into(),
                        paragraphs: vec![
                            "This service sets no cookie, except a login cookie for hosts. Your browser keeps your display name, device choices, language and recent rooms in its local storage on your own device; the start page has a button to forget them.".into(),
                            "No third party is involved: no external servers for connections, no fonts, scripts, analytics or error reporting from elsewhere. Everything comes from this server.".into(),
                        ],
                    },
                    Section {
                        heading: "Your rights".into(),
                        paragraphs: vec![format!(
                            "You may ask to see, correct or erase the data about you, and object to its processing. Contact {}; give the display name you used or your IP address so the records can be found. You may also complain to the Dutch Data Protection Authority (Autoriteit Persoonsgegevens).",
                            or_unset(&p.contact_email, "the operator of this service")
                        )],
                    },
                ],
            )
        }
        Language::Dutch => {
            let ip = match p.ip_mode {
                IpMode::Full => "je volledige IP-adres".to_string(),
                IpMode::Truncated => {
                    "een ingekort IP-adres (het laatste deel weggelaten: IPv4 /24, IPv6 /48)"
                        .to_string()
                }
                IpMode::None => "geen enkel IP-adres".to_string(),
            };
            let names = if p.log_names {
                format!(
                    "Je weergavenaam kan ook in het technische logboek staan, dat {} wordt bewaard om storingen op te lossen.",
                    d(r.technical)
                )
            } else {
                "Je weergavenaam wordt nooit in een logboek geschreven.".to_string()
            };
            let unset = "(niet ingesteld door de beheerder)";
            (
                "Privacyverklaring".into(),
                vec![
                    Section {
                        heading: "Wie is verantwoordelijk".into(),
                        paragraphs: vec![
                            format!("Verwerkingsverantwoordelijke: {}.", or_unset(&p.controller, unset)),
                            format!("Contact: {}.", or_unset(&p.contact_email, unset)),
                            format!("Functionaris gegevensbescherming: {}.", or_unset(&p.dpo, unset)),
                        ],
                    },
                    Section {
                        heading: "Wat wordt verwerkt, en hoe lang".into(),
                        paragraphs: vec![
                            format!("Verzoeken aan deze server worden vastgelegd met {ip}, de opgevraagde pagina, het resultaat en het tijdstip, en {} bewaard.", d(r.access)),
                            format!("Je weergavenaam is alleen zichtbaar voor de deelnemers aan dezelfde vergadering en wordt vergeten als de vergadering eindigt. {names}"),
                            format!("Elke vergadering en elke deelnemer krijgt een willekeurige code. Die codes, de naam van de ruimte en wanneer mensen binnenkwamen en weggingen worden {} bewaard om de dienst te laten werken en te tellen; er staat geen naam en geen adres in.", d(r.focus)),
                            format!("Technische gegevens over de mediaverbinding (status, bitsnelheid, pakketverlies), alleen met de deelnemerscode, worden {} bewaard.", d(r.bridge)),
                            "Het gebruik wordt geteld (hoeveel vergaderingen, met hoeveel mensen, hoe lang) zonder code, naam, ruimtenaam of adres.".into(),
                        ],
                    },
                    Section {
                        heading: "Beeld en geluid".into(),
                        paragraphs: vec![
                            "Beeld en geluid worden nooit opgenomen of opgeslagen. Ze zijn op elke verbinding versleuteld (DTLS-SRTP), worden alleen binnen deze server ontsleuteld om door te geven, en gaan alleen naar de deelnemers aan dezelfde vergadering.".into(),
                            "Camera en microfoon zijn niet verplicht: je kunt ook zonder meedoen.".into(),
                        ],
                    },
                    Section {
                        heading: "Je browser".into(),
                        paragraphs: vec![
                            "Deze dienst plaatst geen cookies, behalve een inlogcookie voor gastheren en gastvrouwen. Je browser bewaart je weergavenaam, apparaatkeuze, taal en recente ruimtes in de lokale opslag op je eigen apparaat; op de startpagina kun je die laten vergeten.".into(),
                            "Er is geen derde partij bij betrokken: geen externe servers voor verbindingen, geen lettertypen, scripts, statistieken of foutmeldingen van elders. Alles komt van deze server.".into(),
                        ],
                    },
                    Section {
                        heading: "Je rechten".into(),
                        paragraphs: vec![format!(
                            "Je mag vragen om de gegevens over jou in te zien, te verbeteren of te wissen, en bezwaar maken tegen de verwerking. Neem contact op via {}; noem de weergavenaam die je gebruikte of je IP-adres, zodat de gegevens gevonden kunnen worden. Je kunt ook een klacht indienen bij de Autoriteit Persoonsgegevens.",
                            or_unset(&p.contact_email, "de beheerder van deze dienst")
                        )],
                    },
                ],
            )
        }
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The statement as a page in the web client's style (its stylesheet and header).
pub fn render_html(settings: &Settings, language: Language) -> String {
    let (title, sections) = sections(settings, language);
    let (other_code, other_name) = match language {
        Language::Dutch => ("en", "English"),
        Language::English => ("nl", "Nederlands"),
    };
    let home = match language {
        Language::Dutch => "Naar de startpagina",
        Language::English => "Back to the start page",
    };
    let mut body = String::new();
    for section in sections {
        body.push_str(&format!(
            "<section class=\"card\">\n<h2>{}</h2>\n",
            escape(&section.heading)
        ));
        for paragraph in section.paragraphs {
            body.push_str(&format!("<p>{}</p>\n", escape(&paragraph)));
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
         </header>\n<main id=\"main\" class=\"container narrow\">\n<h1>{title}</h1>\n{body}\
         </main>\n<footer class=\"site-footer\"><a href=\"/\">{home}</a></footer>\n</body>\n</html>\n",
        lang = language.code(),
        title = escape(&title),
    )
}

/// The statement as plain text, for `zaal privacy-statement`.
pub fn render_text(settings: &Settings, language: Language) -> String {
    let (title, sections) = sections(settings, language);
    let mut out = format!("{title}\n{}\n", "=".repeat(title.chars().count()));
    for section in sections {
        out.push_str(&format!("\n{}\n", section.heading));
        for paragraph in section.paragraphs {
            out.push_str(&format!("\n{paragraph}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        let env: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::load_with_env(None, Some(env)).unwrap()
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(
            human_duration(Duration::from_secs(14 * 86400), Language::English),
            "14 days"
        );
        assert_eq!(
            human_duration(Duration::from_secs(86400), Language::Dutch),
            "1 dag"
        );
        assert_eq!(
            human_duration(Duration::from_secs(24 * 3600 + 3600), Language::Dutch),
            "25 uur"
        );
    }

    #[test]
    fn the_statement_follows_the_configuration() {
        let default = render_text(&settings(&[]), Language::English);
        assert!(default.contains("kept for 14 days"));
        assert!(default.contains("your full IP address"));
        let changed = render_text(
            &settings(&[
                ("ZAAL__RETENTION__ACCESS", "3d"),
                ("ZAAL__PRIVACY__IP_MODE", "truncated"),
                ("ZAAL__PRIVACY__LOG_NAMES", "false"),
                ("ZAAL__PRIVACY__CONTROLLER", "Stichting <School>"),
            ]),
            Language::English,
        );
        assert!(changed.contains("kept for 3 days"));
        assert!(changed.contains("shortened form"));
        assert!(changed.contains("never written to any log"));
        let html = render_html(
            &settings(&[("ZAAL__PRIVACY__CONTROLLER", "Stichting <School>")]),
            Language::Dutch,
        );
        assert!(html.contains("Stichting &lt;School&gt;"), "escaped");
        assert!(html.contains("<html lang=\"nl\">"));
        assert!(html.contains("7 dagen"));
    }
}
