//! The statement held to the configuration and to the statements real Dutch deployments publish.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::*;

fn settings(pairs: &[(&str, &str)]) -> Settings {
    let env: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Settings::load_with_env(None, Some(env)).unwrap()
}

/// Every paragraph by `section.paragraph`.
fn paragraphs(statement: &Statement) -> BTreeMap<String, String> {
    statement
        .sections
        .iter()
        .flat_map(|s| {
            s.paragraphs
                .iter()
                .map(move |p| (format!("{}.{}", s.key, p.key), p.text.clone()))
        })
        .collect()
}

/// The paragraphs whose text differs between two settings (or that only one of them has), the
/// same in both languages.
fn changed_by(before: &[(&str, &str)], after: &[(&str, &str)]) -> BTreeSet<String> {
    let mut per_language = Language::ALL.iter().map(|&language| {
        let a = paragraphs(&compose(&settings(before), language));
        let b = paragraphs(&compose(&settings(after), language));
        a.keys()
            .chain(b.keys())
            .filter(|k| a.get(*k) != b.get(*k))
            .cloned()
            .collect::<BTreeSet<_>>()
    });
    let english = per_language.next().unwrap();
    let dutch = per_language.next().unwrap();
    assert_eq!(english, dutch, "both languages change the same sentences");
    english
}

fn keys(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn durations_read_naturally() {
    assert_eq!(
        human_duration(Duration::from_secs(14 * 86400), Language::English),
        "14 days"
    );
    assert_eq!(
        human_duration(Duration::from_secs(86400), Language::Dutch),
        "24 uur"
    );
    assert_eq!(
        human_duration(Duration::from_secs(2 * 86400), Language::Dutch),
        "2 dagen"
    );
    assert_eq!(
        human_duration(Duration::from_secs(24 * 3600 + 3600), Language::Dutch),
        "25 uur"
    );
}

#[test]
fn every_section_is_there_in_both_languages() {
    let configured = settings(&[
        ("ZAAL__PRIVACY__CONTROLLER", "Stichting Voorbeeld"),
        ("ZAAL__PRIVACY__ADDRESS", "Dorpsstraat 1, 1234 AB Ergens"),
        ("ZAAL__PRIVACY__PHONE", "+31 20 123 4567"),
        ("ZAAL__PRIVACY__KVK", "12345678"),
        ("ZAAL__PRIVACY__DPO", "J. Jansen, fg@voorbeeld.example"),
    ]);
    for s in [settings(&[]), configured] {
        let english = compose(&s, Language::English);
        let dutch = compose(&s, Language::Dutch);
        let sections: Vec<&str> = english.sections.iter().map(|s| s.key).collect();
        assert_eq!(
            sections,
            [
                "controller",
                "processing",
                "legal_basis",
                "media",
                "storage",
                "security",
                "browser",
                "disclosure",
                "rights",
                "complaints",
                "changes"
            ]
        );
        let en = paragraphs(&english);
        let nl = paragraphs(&dutch);
        assert_eq!(
            en.keys().collect::<Vec<_>>(),
            nl.keys().collect::<Vec<_>>(),
            "the same paragraphs in both languages"
        );
        for (key, text) in &en {
            assert_ne!(text, &nl[key], "{key} is translated");
            assert!(!text.trim().is_empty(), "{key} says something");
        }
        for (a, b) in english.sections.iter().zip(&dutch.sections) {
            assert_ne!(a.heading, b.heading, "heading of {} is translated", a.key);
        }
    }
}

#[test]
fn each_setting_changes_exactly_the_sentences_that_depend_on_it() {
    assert_eq!(
        changed_by(&[], &[("ZAAL__RETENTION__FOCUS", "4d")]),
        keys(&["processing.identifiers"])
    );
    assert_eq!(
        changed_by(&[], &[("ZAAL__RETENTION__ACCESS", "3d")]),
        keys(&["processing.access"])
    );
    assert_eq!(
        changed_by(&[], &[("ZAAL__RETENTION__BRIDGE", "12h")]),
        keys(&["processing.bridge"])
    );
    assert_eq!(
        changed_by(&[], &[("ZAAL__RETENTION__TECHNICAL", "10d")]),
        keys(&["processing.technical", "processing.names"])
    );
    for mode in ["truncated", "none"] {
        assert_eq!(
            changed_by(&[], &[("ZAAL__PRIVACY__IP_MODE", mode)]),
            keys(&["processing.access", "processing.technical", "rights.how"]),
            "ip_mode {mode}"
        );
    }
    assert_eq!(
        changed_by(&[], &[("ZAAL__PRIVACY__LOG_NAMES", "false")]),
        keys(&["processing.names", "rights.how"])
    );
    assert_eq!(
        changed_by(&[], &[("ZAAL__PRIVACY__LEGAL_BASIS", "public_task")]),
        keys(&[
            "legal_basis.basis",
            "legal_basis.balance",
            "rights.objection"
        ])
    );
    assert_eq!(
        changed_by(&[], &[("ZAAL__PRIVACY__LEGAL_BASIS", "consent")]),
        keys(&[
            "legal_basis.basis",
            "legal_basis.balance",
            "rights.list",
            "rights.consent",
            "rights.objection"
        ])
    );
    assert_eq!(
        changed_by(
            &[],
            &[
                ("ZAAL__PRIVACY__LEGAL_BASIS", "other"),
                ("ZAAL__PRIVACY__LEGAL_BASIS_OTHER", "a covenant"),
            ]
        ),
        keys(&[
            "legal_basis.basis",
            "legal_basis.balance",
            "rights.objection"
        ])
    );
    assert_eq!(
        changed_by(&[], &[("ZAAL__FOCUS__WAIT_FOR_HOST", "false")]),
        keys(&["security.creation"])
    );
    assert_eq!(
        changed_by(&[], &[("ZAAL__PRIVACY__HOSTING_PROVIDER", "Rekenhal B.V.")]),
        keys(&["storage.servers", "disclosure.processors"])
    );
    assert_eq!(
        changed_by(&[], &[("ZAAL__PRIVACY__RESPONSE_DAYS", "14")]),
        keys(&["rights.term"])
    );
    assert_eq!(
        changed_by(
            &[],
            &[("ZAAL__HTTP__PUBLIC_URL", "https://meet.school.example")]
        ),
        keys(&["security.tls"])
    );
}

#[test]
fn placeholders_are_named_until_the_operator_fills_them_in() {
    let keys: Vec<&str> = placeholders(&settings(&[])).iter().map(|p| p.key).collect();
    assert_eq!(keys, ["privacy.controller", "privacy.contact_email"]);
    assert!(
        paragraphs(&compose(&settings(&[]), Language::English))["controller.controller"]
            .contains("(not configured by the operator)")
    );
    let filled = settings(&[
        ("ZAAL__PRIVACY__CONTROLLER", "Stichting Voorbeeld"),
        ("ZAAL__PRIVACY__CONTACT_EMAIL", "privacy@voorbeeld.example"),
    ]);
    assert!(placeholders(&filled).is_empty());
    for language in Language::ALL {
        let text = render_text(&compose(&filled, language), None);
        assert!(!text.contains("(not configured"), "{text}");
        assert!(!text.contains("(niet ingesteld"), "{text}");
    }
}

#[test]
fn pages_are_escaped_and_carry_their_edition() {
    let s = settings(&[("ZAAL__PRIVACY__CONTROLLER", "Stichting <School>")]);
    let edition = Edition::from_stored(2, "2026-12-03").unwrap();
    let html = render_html(&compose(&s, Language::Dutch), &edition);
    assert!(html.contains("Stichting &lt;School&gt;"), "escaped");
    assert!(html.contains("<html lang=\"nl\">"));
    assert!(html.contains(
        "<time datetime=\"2026-12-03\">Versie 2, laatst gewijzigd op 3 december 2026.</time>"
    ));
    assert!(html.contains("<section class=\"card\" id=\"rights\">"));
    let text = render_text(&compose(&s, Language::English), Some(&edition));
    assert!(text.contains("\nVersion 2, last changed on 3 December 2026.\n"));
    assert!(!render_text(&compose(&s, Language::English), None).contains("Version 2"));
}

#[test]
fn the_digest_follows_the_text() {
    let a = texts(&settings(&[]));
    let same = texts(&settings(&[]));
    let other = texts(&settings(&[("ZAAL__RETENTION__FOCUS", "4d")]));
    assert_eq!(a.digest, same.digest);
    assert_ne!(a.digest, other.digest);
    assert!(a.english.starts_with("Privacy statement\n"));
    assert!(a.dutch.starts_with("Privacyverklaring\n"));
}

/// A point a published statement makes, and the words that make it in ours.
struct Point {
    what: &'static str,
    section: &'static str,
    english: &'static [&'static str],
    dutch: &'static [&'static str],
}

/// Checks each point in its section, in both languages.
fn says_every_point(s: &Settings, points: &[Point]) {
    for language in Language::ALL {
        let statement = compose(s, language);
        for point in points {
            let section = statement
                .sections
                .iter()
                .find(|sec| sec.key == point.section)
                .unwrap_or_else(|| panic!("no section {} for {}", point.section, point.what));
            let text: String = section
                .paragraphs
                .iter()
                .map(|p| p.text.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            let needles = match language {
                Language::English => point.english,
                Language::Dutch => point.dutch,
            };
            for needle in needles {
                assert!(
                    text.contains(needle),
                    "{:?}: {} ({}) should say {needle:?}; it says: {text}",
                    language,
                    point.what,
                    point.section
                );
            }
        }
    }
}

/// What both published statements say, whatever the organisation's settings.
const COMMON: &[Point] = &[
    Point {
        what: "only what the call, debugging and usage reports need",
        section: "processing",
        english: &[
            "Only what is needed to let the meetings work, to solve technical problems and to count",
        ],
        dutch: &[
            "alleen verwerkt wat nodig is om de vergaderingen te laten werken, om technische problemen op te lossen en om te tellen",
        ],
    },
    Point {
        what: "the IP address carries the call",
        section: "processing",
        english: &["To carry sound and video", "IP address"],
        dutch: &["Om beeld en geluid", "IP-adres"],
    },
    Point {
        what: "audio and video are not recorded, only passed on to the others",
        section: "media",
        english: &[
            "never recorded or stored",
            "sent only to the participants of the same meeting",
        ],
        dutch: &[
            "nooit opgenomen of opgeslagen",
            "alleen naar de deelnemers aan dezelfde vergadering",
        ],
    },
    Point {
        what: "the camera is not obligatory",
        section: "media",
        english: &["Camera and microphone are optional"],
        dutch: &["Camera en microfoon zijn niet verplicht"],
    },
    Point {
        what: "usage reports: how many calls with how many people",
        section: "processing",
        english: &["how many meetings, with how many people"],
        dutch: &["hoeveel vergaderingen, met hoeveel mensen"],
    },
    Point {
        what: "legal basis: legitimate interest",
        section: "legal_basis",
        english: &[
            "legitimate interest",
            "article 6(1)(f) GDPR",
            "the intrusion on your privacy is small",
        ],
        dutch: &[
            "gerechtvaardigd belang",
            "artikel 6 lid 1 onder f AVG",
            "de inbreuk op je privacy is klein",
        ],
    },
    Point {
        what: "stored on own servers in the Netherlands, no servers of third parties",
        section: "storage",
        english: &[
            "stored on the server that runs it, in the Netherlands",
            "no servers of third parties are used",
        ],
        dutch: &[
            "staat op de server waarop hij draait, in Nederland",
            "er worden geen servers van derden gebruikt",
        ],
    },
    Point {
        what: "security: as little data as possible, own servers, only authorised users create a meeting",
        section: "security",
        english: &[
            "As little data as possible is kept",
            "runs on its own server",
            "Only authorised users can start a meeting",
        ],
        dutch: &[
            "zo min mogelijk bewaard",
            "draait op een eigen server",
            "Alleen bevoegde gebruikers kunnen een vergadering beginnen",
        ],
    },
    Point {
        what: "disclosed to no one unless legally obliged, e.g. the police",
        section: "disclosure",
        english: &[
            "gives personal data to no one, unless a law obliges it",
            "police",
        ],
        dutch: &[
            "geeft persoonsgegevens aan niemand, tenzij een wet daartoe verplicht",
            "politie",
        ],
    },
    Point {
        what: "rights: explanation, access, correction, erasure, withdrawal of consent, restriction, objection",
        section: "rights",
        english: &[
            "an explanation",
            "to see the data about you",
            "corrected",
            "erased",
            "withdraw that consent",
            "restricted",
            "to object",
        ],
        dutch: &[
            "uitleg",
            "in te zien",
            "te laten verbeteren",
            "te laten wissen",
            "toestemming op elk moment intrekken",
            "te laten beperken",
            "bezwaar",
        ],
    },
    Point {
        what: "how to identify oneself",
        section: "rights",
        english: &[
            "you may be asked to show that it is about you",
            "citizen service number (BSN)",
        ],
        dutch: &[
            "te laten zien dat ze over jou gaan",
            "burgerservicenummer (BSN)",
        ],
    },
    Point {
        what: "answered within 30 days, extendable with notice",
        section: "rights",
        english: &[
            "within 30 days",
            "at most two months longer",
            "you are then told so",
        ],
        dutch: &[
            "binnen 30 dagen",
            "hoogstens twee maanden langer",
            "dat hoor je dan",
        ],
    },
    Point {
        what: "complain to the organisation first, then to the Autoriteit Persoonsgegevens",
        section: "complaints",
        english: &["please tell us first", "Autoriteit Persoonsgegevens"],
        dutch: &[
            "laat het ons dan eerst weten",
            "Autoriteit Persoonsgegevens",
        ],
    },
    Point {
        what: "the statement changes when the service does",
        section: "changes",
        english: &[
            "it changes when the service changes",
            "when its text last changed",
        ],
        dutch: &[
            "verandert dus als de dienst verandert",
            "wanneer de tekst voor het laatst is gewijzigd",
        ],
    },
];

#[test]
fn a_statement_like_prodemos_says_what_theirs_says() {
    // Full IP addresses and names in the technical logs for two weeks, web server logs at most
    // 14 days, Jicofo's identifiers 7 days, the bridge's logs 24 hours; legitimate interest; own
    // servers in the Netherlands; the organisation's full contact details.
    let s = settings(&[
        ("ZAAL__PRIVACY__IP_MODE", "full"),
        ("ZAAL__PRIVACY__LOG_NAMES", "true"),
        ("ZAAL__RETENTION__ACCESS", "14d"),
        ("ZAAL__RETENTION__TECHNICAL", "14d"),
        ("ZAAL__RETENTION__FOCUS", "7d"),
        ("ZAAL__RETENTION__BRIDGE", "24h"),
        ("ZAAL__PRIVACY__HOSTING_COUNTRY", "NL"),
        (
            "ZAAL__PRIVACY__CONTROLLER",
            "Stichting Huis voor Democratie",
        ),
        ("ZAAL__PRIVACY__ADDRESS", "Hofweg 1, 2511 AA Den Haag"),
        ("ZAAL__PRIVACY__CONTACT_EMAIL", "privacy@democratie.example"),
        ("ZAAL__PRIVACY__PHONE", "070 757 0200"),
        ("ZAAL__PRIVACY__KVK", "12345678"),
        (
            "ZAAL__PRIVACY__DPO",
            "de functionaris, fg@democratie.example",
        ),
        (
            "ZAAL__PRIVACY__COMPLAINT_EMAIL",
            "klachten@democratie.example",
        ),
    ]);
    says_every_point(&s, COMMON);
    says_every_point(
        &s,
        &[
            Point {
                what: "IP addresses kept two weeks in the logs",
                section: "processing",
                english: &[
                    "logged with your full IP address",
                    "kept for 14 days",
                    "technical log, with your full IP address, and kept for 14 days",
                ],
                dutch: &[
                    "vastgelegd met je volledige IP-adres",
                    "14 dagen bewaard",
                    "technisch logboek, met je volledige IP-adres, dat 14 dagen",
                ],
            },
            Point {
                what: "the name given to the meeting is kept two weeks in the technical logs",
                section: "processing",
                english: &["display name may also appear in the technical log, kept for 14 days"],
                dutch: &["weergavenaam kan ook in het technische logboek staan, dat 14 dagen"],
            },
            Point {
                what: "the focus's records 7 days, the bridge's 24 hours",
                section: "processing",
                english: &["left are kept for 7 days", "is kept for 24 hours"],
                dutch: &["weggingen worden 7 dagen bewaard", "worden 24 uur bewaard"],
            },
            Point {
                what: "who is responsible, and all contact details",
                section: "controller",
                english: &[
                    "Stichting Huis voor Democratie",
                    "Postal address: Hofweg 1, 2511 AA Den Haag.",
                    "E-mail: privacy@democratie.example.",
                    "Telephone: 070 757 0200.",
                    "Chamber of Commerce (KvK) number: 12345678.",
                    "Data-protection officer: de functionaris",
                ],
                dutch: &[
                    "Stichting Huis voor Democratie",
                    "Postadres: Hofweg 1, 2511 AA Den Haag.",
                    "E-mail: privacy@democratie.example.",
                    "Telefoon: 070 757 0200.",
                    "KvK-nummer: 12345678.",
                    "Functionaris gegevensbescherming: de functionaris",
                ],
            },
            Point {
                what: "complaints go to the organisation's own complaint address first",
                section: "complaints",
                english: &["klachten@democratie.example"],
                dutch: &["klachten@democratie.example"],
            },
            Point {
                what: "records can be found by name or address",
                section: "rights",
                english: &["give the display name you used and when, or your IP address"],
                dutch: &["de weergavenaam die je gebruikte en wanneer, of je IP-adres"],
            },
        ],
    );
}

#[test]
fn a_statement_like_nluugs_says_what_theirs_says() {
    // No IP addresses stored at all, no names in any log, identifiers kept 4 days; legitimate
    // interest; own servers in the Netherlands.
    let s = settings(&[
        ("ZAAL__PRIVACY__IP_MODE", "none"),
        ("ZAAL__PRIVACY__LOG_NAMES", "false"),
        ("ZAAL__RETENTION__FOCUS", "4d"),
        ("ZAAL__PRIVACY__HOSTING_COUNTRY", "NL"),
        ("ZAAL__PRIVACY__CONTROLLER", "Vereniging Open Systemen"),
        ("ZAAL__PRIVACY__CONTACT_EMAIL", "bestuur@vereniging.example"),
    ]);
    says_every_point(&s, COMMON);
    says_every_point(
        &s,
        &[
            Point {
                what: "IP addresses are not stored",
                section: "processing",
                english: &[
                    "logged with no IP address at all",
                    "technical log, with no IP address at all",
                ],
                dutch: &[
                    "vastgelegd met geen enkel IP-adres",
                    "technisch logboek, met geen enkel IP-adres",
                ],
            },
            Point {
                what: "names are not logged",
                section: "processing",
                english: &["Your display name is never written to any log."],
                dutch: &["Je weergavenaam wordt nooit in een logboek geschreven."],
            },
            Point {
                what: "identifiers kept 4 days",
                section: "processing",
                english: &["left are kept for 4 days"],
                dutch: &["weggingen worden 4 dagen bewaard"],
            },
            Point {
                what: "nothing kept can be traced back to a person",
                section: "rights",
                english: &["stores neither display names nor IP addresses"],
                dutch: &["bewaart geen weergavenamen en geen IP-adressen"],
            },
            Point {
                what: "who is responsible",
                section: "controller",
                english: &[
                    "Vereniging Open Systemen",
                    "E-mail: bestuur@vereniging.example.",
                ],
                dutch: &[
                    "Vereniging Open Systemen",
                    "E-mail: bestuur@vereniging.example.",
                ],
            },
        ],
    );
}
