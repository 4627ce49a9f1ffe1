//! The visitor's rights and how to use them, and how the statement itself changes. What a
//! visitor can be found by follows what the pipeline stores (names, the IP mode), and which
//! rights apply follows the legal basis.

use super::{Section, Writer};
use crate::config::{IpMode, LegalBasis};

pub(super) fn rights(w: &Writer) -> Section {
    let p = &w.settings.privacy;
    let mut s = Section::new("rights", w.heading("Your rights", "Je rechten"));
    let portable = matches!(p.legal_basis, LegalBasis::Consent | LegalBasis::Contract);
    s.say(
        "list",
        if portable {
            w.heading(
                "You have the right to an explanation of what is done with your data, to see the data about you, to have it corrected, to have it erased, to have its processing restricted, to object to it, and to receive it in a form you can take elsewhere.",
                "Je hebt het recht op uitleg over wat er met je gegevens gebeurt, en het recht om de gegevens over jou in te zien, te laten verbeteren, te laten wissen, de verwerking te laten beperken, er bezwaar tegen te maken, en ze te krijgen in een vorm die je elders kunt gebruiken.",
            )
        } else {
            w.heading(
                "You have the right to an explanation of what is done with your data, to see the data about you, to have it corrected, to have it erased, to have its processing restricted, and to object to it.",
                "Je hebt het recht op uitleg over wat er met je gegevens gebeurt, en het recht om de gegevens over jou in te zien, te laten verbeteren, te laten wissen, de verwerking te laten beperken en er bezwaar tegen te maken.",
            )
        },
    );
    let consent = if p.legal_basis == LegalBasis::Consent {
        w.heading(
            "Because the processing rests on your consent, you may withdraw it at any time: leave the meeting and ask for what is kept about you to be erased. What was done before you withdrew stays lawful.",
            "Omdat de verwerking op jouw toestemming berust, kun je die op elk moment intrekken: verlaat de vergadering en vraag om te wissen wat er over jou is bewaard. Wat vóór het intrekken gebeurde, blijft rechtmatig.",
        )
    } else {
        w.heading(
            "Where anything rests on your consent, you may withdraw that consent at any time.",
            "Waar iets op jouw toestemming berust, kun je die toestemming op elk moment intrekken.",
        )
    };
    s.say("consent", consent);
    let ground = match p.legal_basis {
        LegalBasis::LegitimateInterest => {
            Some(("a legitimate interest", "een gerechtvaardigd belang"))
        }
        LegalBasis::PublicTask => Some((
            "a task in the public interest",
            "een taak van algemeen belang",
        )),
        _ => None,
    };
    if let Some((en, nl)) = ground {
        s.say(
            "objection",
            w.pick(
                format!("Because the processing rests on {en}, you may object to it on grounds of your own situation; it then stops unless there are compelling reasons that outweigh your interests."),
                format!("Omdat de verwerking op {nl} berust, kun je er bezwaar tegen maken vanwege je eigen situatie; de verwerking stopt dan, tenzij er dwingende redenen zijn die zwaarder wegen dan jouw belangen."),
            ),
        );
    }
    s.say(
        "how",
        w.pick(
            format!("Send your request to {}. {}", w.contact(), identify(w)),
            format!("Stuur je verzoek naar {}. {}", w.contact(), identify(w)),
        ),
    );
    s.say(
        "verification",
        w.heading(
            "So that data is given only to the person it is about, you may be asked to show that it is about you; never for more than that needs, and never for a copy of an identity document showing your citizen service number (BSN).",
            "Om gegevens alleen te geven aan wie ze over gaan, kunnen we je vragen te laten zien dat ze over jou gaan; nooit meer dan daarvoor nodig is, en nooit een kopie van een identiteitsbewijs waarop je burgerservicenummer (BSN) te zien is.",
        ),
    );
    let days = p.response_days;
    s.say(
        "term",
        w.pick(
            format!("You get an answer within {days} days. If a request is complex, or there are many, this may take at most two months longer; you are then told so within those {days} days, with the reason."),
            format!("Je krijgt binnen {days} dagen antwoord. Is een verzoek ingewikkeld, of zijn het er veel, dan kan dat hoogstens twee maanden langer duren; dat hoor je dan binnen die {days} dagen, met de reden."),
        ),
    );
    s
}

/// How a visitor's records can be found: by what the pipeline writes.
fn identify(w: &Writer) -> String {
    let p = &w.settings.privacy;
    match (p.log_names, p.ip_mode) {
        (true, IpMode::Full) => w.heading(
            "To find the records about you, give the display name you used and when, or your IP address.",
            "Noem, om de gegevens over jou te vinden, de weergavenaam die je gebruikte en wanneer, of je IP-adres.",
        ),
        (true, IpMode::Truncated) => w.heading(
            "To find the records about you, give the display name you used and when, or your IP address (the logs hold only its shortened form, which others may share).",
            "Noem, om de gegevens over jou te vinden, de weergavenaam die je gebruikte en wanneer, of je IP-adres (de logboeken bevatten alleen de ingekorte vorm, die ook van anderen kan zijn).",
        ),
        (true, IpMode::None) => w.heading(
            "To find the records about you, give the display name you used and when; no IP address is stored.",
            "Noem, om de gegevens over jou te vinden, de weergavenaam die je gebruikte en wanneer; er wordt geen IP-adres bewaard.",
        ),
        (false, IpMode::Full) => w.heading(
            "To find the records about you, give your IP address and when you used the service; display names are not stored.",
            "Noem, om de gegevens over jou te vinden, je IP-adres en wanneer je de dienst gebruikte; weergavenamen worden niet bewaard.",
        ),
        (false, IpMode::Truncated) => w.heading(
            "To find the records about you, give your IP address and when you used the service (the logs hold only its shortened form, which others may share); display names are not stored.",
            "Noem, om de gegevens over jou te vinden, je IP-adres en wanneer je de dienst gebruikte (de logboeken bevatten alleen de ingekorte vorm, die ook van anderen kan zijn); weergavenamen worden niet bewaard.",
        ),
        (false, IpMode::None) => w.heading(
            "This service stores neither display names nor IP addresses, so what it keeps cannot be traced back to you.",
            "Deze dienst bewaart geen weergavenamen en geen IP-adressen, dus wat er wordt bewaard is niet tot jou te herleiden.",
        ),
    }
}

pub(super) fn changes(w: &Writer) -> Section {
    let mut s = Section::new(
        "changes",
        w.heading("Changes to this statement", "Wijzigingen"),
    );
    s.say(
        "generated",
        w.heading(
            "This statement is generated by the server from the settings it runs with, so it changes when the service changes: a new setting or a new version of the software. The version and date at the top say when its text last changed; earlier texts are kept, so what changed can be shown.",
            "Deze verklaring wordt door de server gemaakt uit de instellingen waarmee hij draait, en verandert dus als de dienst verandert: een nieuwe instelling of een nieuwe versie van de software. De versie en datum bovenaan zeggen wanneer de tekst voor het laatst is gewijzigd; eerdere teksten worden bewaard, zodat te zien is wat er veranderde.",
        ),
    );
    s
}
