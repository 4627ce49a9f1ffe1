//! Who is responsible and where complaints go: the organisation's own details, as configured.

use super::{Section, Writer};

pub(super) fn controller(w: &Writer) -> Section {
    let p = &w.settings.privacy;
    let mut s = Section::new(
        "controller",
        w.heading("Who is responsible", "Wie is verantwoordelijk"),
    );
    let organisation = w.or_unset(&p.controller);
    s.say(
        "controller",
        w.pick(
            format!("Responsible for the personal data this video-meeting service processes (the controller under the General Data Protection Regulation, GDPR): {organisation}."),
            format!("Verantwoordelijk voor de persoonsgegevens die deze dienst voor videovergaderen verwerkt (de verwerkingsverantwoordelijke volgens de Algemene verordening gegevensbescherming, AVG): {organisation}."),
        ),
    );
    if !p.address.is_empty() {
        s.say(
            "address",
            w.pick(
                format!("Postal address: {}.", p.address),
                format!("Postadres: {}.", p.address),
            ),
        );
    }
    s.say(
        "contact",
        w.pick(
            format!("E-mail: {}.", w.contact()),
            format!("E-mail: {}.", w.contact()),
        ),
    );
    if !p.phone.is_empty() {
        s.say(
            "phone",
            w.pick(
                format!("Telephone: {}.", p.phone),
                format!("Telefoon: {}.", p.phone),
            ),
        );
    }
    if !p.kvk.is_empty() {
        s.say(
            "kvk",
            w.pick(
                format!("Chamber of Commerce (KvK) number: {}.", p.kvk),
                format!("KvK-nummer: {}.", p.kvk),
            ),
        );
    }
    if !p.dpo.is_empty() {
        s.say(
            "dpo",
            w.pick(
                format!("Data-protection officer: {}.", p.dpo),
                format!("Functionaris gegevensbescherming: {}.", p.dpo),
            ),
        );
    }
    s.say(
        "scope",
        w.heading(
            "This statement covers the video meetings on this server: its web pages, the meetings themselves and the logs it keeps. If you have a question about it, or want to know exactly what is kept about you, write to the address above.",
            "Deze verklaring gaat over de videovergaderingen op deze server: de webpagina's, de vergaderingen zelf en de logboeken die de server bijhoudt. Heb je een vraag, of wil je precies weten wat er over jou wordt bewaard, schrijf dan naar het adres hierboven.",
        ),
    );
    s
}

pub(super) fn complaints(w: &Writer) -> Section {
    let p = &w.settings.privacy;
    let mut s = Section::new("complaints", w.heading("Complaints", "Klachten"));
    let address = if p.complaint_email.is_empty() {
        w.contact()
    } else {
        p.complaint_email.clone()
    };
    s.say(
        "organisation",
        w.pick(
            format!("If you are not satisfied with how your data is handled, please tell us first, at {address}; we will look into it and answer you."),
            format!("Ben je niet tevreden over hoe er met je gegevens wordt omgegaan, laat het ons dan eerst weten via {address}; we zoeken het uit en geven je antwoord."),
        ),
    );
    s.say(
        "authority",
        w.heading(
            "If we do not solve it, or you would rather not come to us, you have the right to complain to the Dutch Data Protection Authority, the Autoriteit Persoonsgegevens (autoriteitpersoonsgegevens.nl).",
            "Lossen we het niet op, of wil je liever niet bij ons aankloppen, dan heb je het recht een klacht in te dienen bij de Autoriteit Persoonsgegevens (autoriteitpersoonsgegevens.nl).",
        ),
    );
    s
}
