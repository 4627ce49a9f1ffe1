//! What is processed, on what ground, and where it is kept: the retention periods, the IP mode
//! and the name policy the pipeline enforces, the legal basis and hosting the operator states.

use super::{Section, Writer};
use crate::config::{IpMode, LegalBasis};

pub(super) fn what_and_how_long(w: &Writer) -> Section {
    let r = &w.settings.retention;
    let p = &w.settings.privacy;
    let mut s = Section::new(
        "processing",
        w.heading(
            "What is processed, and for how long",
            "Wat wordt verwerkt, en hoe lang",
        ),
    );
    s.say(
        "purpose",
        w.heading(
            "Only what is needed to let the meetings work, to solve technical problems and to count how much the service is used is processed.",
            "Er wordt alleen verwerkt wat nodig is om de vergaderingen te laten werken, om technische problemen op te lossen en om te tellen hoeveel de dienst wordt gebruikt.",
        ),
    );
    s.say(
        "connection",
        w.heading(
            "To carry sound and video between you and the others, the server uses your IP address while you are in a meeting; for that it is held in memory only, and forgotten when you leave.",
            "Om beeld en geluid tussen jou en de anderen door te geven gebruikt de server je IP-adres zolang je in een vergadering bent; daarvoor staat het alleen in het werkgeheugen, en het wordt vergeten als je weggaat.",
        ),
    );
    let (ip_en, ip_nl) = match p.ip_mode {
        IpMode::Full => ("your full IP address", "je volledige IP-adres"),
        IpMode::Truncated => (
            "a shortened form of your IP address (the last part removed: IPv4 /24, IPv6 /48)",
            "een ingekort IP-adres (het laatste deel weggelaten: IPv4 /24, IPv6 /48)",
        ),
        IpMode::None => ("no IP address at all", "geen enkel IP-adres"),
    };
    s.say(
        "access",
        w.pick(
            format!("Requests to this server are logged with {ip_en}, the page requested, the result and the time, and kept for {}.", w.duration(r.access)),
            format!("Verzoeken aan deze server worden vastgelegd met {ip_nl}, de opgevraagde pagina, het resultaat en het tijdstip, en {} bewaard.", w.duration(r.access)),
        ),
    );
    s.say(
        "technical",
        w.pick(
            format!("Warnings and errors are written to a technical log, with {ip_en}, and kept for {} to resolve problems.", w.duration(r.technical)),
            format!("Waarschuwingen en fouten komen in een technisch logboek, met {ip_nl}, dat {} wordt bewaard om storingen op te lossen.", w.duration(r.technical)),
        ),
    );
    let names = if p.log_names {
        w.pick(
            format!("Your display name may also appear in the technical log, kept for {} to resolve problems.", w.duration(r.technical)),
            format!("Je weergavenaam kan ook in het technische logboek staan, dat {} wordt bewaard om storingen op te lossen.", w.duration(r.technical)),
        )
    } else {
        w.heading(
            "Your display name is never written to any log.",
            "Je weergavenaam wordt nooit in een logboek geschreven.",
        )
    };
    s.say(
        "names",
        w.pick(
            format!("Your display name is shown only to the participants of the same meeting and is forgotten when the meeting ends. {names}"),
            format!("Je weergavenaam is alleen zichtbaar voor de deelnemers aan dezelfde vergadering en wordt vergeten als de vergadering eindigt. {names}"),
        ),
    );
    s.say(
        "identifiers",
        w.pick(
            format!("Each meeting and each participant gets a random identifier. These identifiers, the room name, and when people joined and left are kept for {} to run and count the service; they contain no name and no address.", w.duration(r.focus)),
            format!("Elke vergadering en elke deelnemer krijgt een willekeurige code. Die codes, de naam van de ruimte en wanneer mensen binnenkwamen en weggingen worden {} bewaard om de dienst te laten werken en te tellen; er staat geen naam en geen adres in.", w.duration(r.focus)),
        ),
    );
    s.say(
        "bridge",
        w.pick(
            format!("Technical data about the media connection (its state, bit rates, packet loss), by participant identifier only, is kept for {}.", w.duration(r.bridge)),
            format!("Technische gegevens over de mediaverbinding (status, bitsnelheid, pakketverlies), alleen met de deelnemerscode, worden {} bewaard.", w.duration(r.bridge)),
        ),
    );
    s.say(
        "usage",
        w.heading(
            "Usage is counted (how many meetings, with how many people, how long) without any identifier, name, room name or address.",
            "Het gebruik wordt geteld (hoeveel vergaderingen, met hoeveel mensen, hoe lang) zonder code, naam, ruimtenaam of adres.",
        ),
    );
    s.say(
        "hosts",
        w.pick(
            format!("For hosts (who create and lead meetings, such as teachers) the account name and a one-way hash of the password are kept until the account is removed; a login lasts at most {}.", w.duration(w.settings.auth.session_ttl)),
            format!("Van gastheren en gastvrouwen (wie vergaderingen aanmaakt en leidt, zoals docenten) worden de accountnaam en een niet terug te rekenen hash van het wachtwoord bewaard tot het account wordt verwijderd; een login duurt hoogstens {}.", w.duration(w.settings.auth.session_ttl)),
        ),
    );
    s
}

pub(super) fn legal_basis(w: &Writer) -> Section {
    let mut s = Section::new(
        "legal_basis",
        w.heading("On what legal basis", "Op welke grondslag"),
    );
    let organisation = w.organisation();
    let basis = match &w.settings.privacy.legal_basis {
        LegalBasis::LegitimateInterest => w.pick(
            format!("These data are processed on the basis of the legitimate interest of {organisation} in offering video meetings (article 6(1)(f) GDPR)."),
            format!("Deze gegevens worden verwerkt op grond van het gerechtvaardigd belang van {organisation} bij het aanbieden van videovergaderingen (artikel 6 lid 1 onder f AVG)."),
        ),
        LegalBasis::PublicTask => w.pick(
            format!("These data are processed because it is necessary for a task that {organisation} carries out in the public interest, such as teaching (article 6(1)(e) GDPR)."),
            format!("Deze gegevens worden verwerkt omdat dat nodig is voor een taak van algemeen belang die {organisation} uitvoert, zoals het geven van onderwijs (artikel 6 lid 1 onder e AVG)."),
        ),
        LegalBasis::Contract => w.pick(
            format!("These data are processed because it is necessary to carry out the agreement you have with {organisation} (article 6(1)(b) GDPR)."),
            format!("Deze gegevens worden verwerkt omdat dat nodig is om de overeenkomst uit te voeren die je met {organisation} hebt (artikel 6 lid 1 onder b AVG)."),
        ),
        LegalBasis::Consent => w.pick(
            "These data are processed with your consent (article 6(1)(a) GDPR), which you give by joining a meeting and may withdraw at any time.".into(),
            "Deze gegevens worden verwerkt met jouw toestemming (artikel 6 lid 1 onder a AVG), die je geeft door aan een vergadering deel te nemen en op elk moment kunt intrekken.".into(),
        ),
        LegalBasis::LegalObligation => w.pick(
            format!("These data are processed because it is necessary to meet a legal obligation of {organisation} (article 6(1)(c) GDPR)."),
            format!("Deze gegevens worden verwerkt omdat dat nodig is om aan een wettelijke plicht van {organisation} te voldoen (artikel 6 lid 1 onder c AVG)."),
        ),
        LegalBasis::Other(text) => w.pick(
            format!("These data are processed on this legal basis: {text}."),
            format!("Deze gegevens worden verwerkt op deze grondslag: {text}."),
        ),
    };
    s.say("basis", basis);
    if w.settings.privacy.legal_basis == LegalBasis::LegitimateInterest {
        s.say(
            "balance",
            w.heading(
                "Without an IP address and a room, no video meeting can take place; what is kept is the least that is needed, the intrusion on your privacy is small and the retention periods are short.",
                "Zonder IP-adres en ruimte kan er geen videovergadering plaatsvinden; wat wordt bewaard is het minste dat nodig is, de inbreuk op je privacy is klein en de bewaartermijnen zijn kort.",
            ),
        );
    }
    s
}

pub(super) fn media(w: &Writer) -> Section {
    let mut s = Section::new(
        "media",
        w.heading("Sound, video and chat", "Beeld, geluid en chat"),
    );
    s.say(
        "not_recorded",
        w.heading(
            "Audio and video are never recorded or stored. They are encrypted on every connection (DTLS-SRTP), decrypted only inside this server to be passed on, and sent only to the participants of the same meeting.",
            "Beeld en geluid worden nooit opgenomen of opgeslagen. Ze zijn op elke verbinding versleuteld (DTLS-SRTP), worden alleen binnen deze server ontsleuteld om door te geven, en gaan alleen naar de deelnemers aan dezelfde vergadering.",
        ),
    );
    s.say(
        "chat",
        w.heading(
            "Chat messages go only to the participants of the same meeting and are not stored.",
            "Chatberichten gaan alleen naar de deelnemers aan dezelfde vergadering en worden niet bewaard.",
        ),
    );
    s.say(
        "optional",
        w.heading(
            "Camera and microphone are optional: you can join with neither.",
            "Camera en microfoon zijn niet verplicht: je kunt ook zonder meedoen.",
        ),
    );
    s
}

pub(super) fn storage(w: &Writer) -> Section {
    let p = &w.settings.privacy;
    let mut s = Section::new(
        "storage",
        w.heading("Where the data is kept", "Waar de gegevens staan"),
    );
    let location = match p.hosting_country {
        Some(country) => w.pick(
            format!("Everything this service keeps is stored on the server that runs it, in {}, and nowhere else.", country.english),
            format!("Alles wat deze dienst bewaart staat op de server waarop hij draait, in {}, en nergens anders.", country.dutch),
        ),
        None => w.heading(
            "Everything this service keeps is stored on the server that runs it, and nowhere else.",
            "Alles wat deze dienst bewaart staat op de server waarop hij draait, en nergens anders.",
        ),
    };
    s.say("location", location);
    let organisation = w.organisation();
    let servers = if p.hosting_provider.is_empty() {
        w.pick(
            format!("That server belongs to {organisation}; no servers of third parties are used."),
            format!(
                "Die server is van {organisation}; er worden geen servers van derden gebruikt."
            ),
        )
    } else {
        w.pick(
            format!("That server is run for {organisation} by {}; no other servers of third parties are used.", p.hosting_provider),
            format!("Die server wordt voor {organisation} beheerd door {}; er worden geen andere servers van derden gebruikt.", p.hosting_provider),
        )
    };
    s.say("servers", servers);
    s
}

pub(super) fn browser(w: &Writer) -> Section {
    let mut s = Section::new("browser", w.heading("Your browser", "Je browser"));
    s.say(
        "cookies",
        w.heading(
            "This service sets no cookie, except a login cookie for hosts. Your browser keeps your display name, device choices, language and recent rooms in its local storage on your own device; the start page has a button to forget them.",
            "Deze dienst plaatst geen cookies, behalve een inlogcookie voor gastheren en gastvrouwen. Je browser bewaart je weergavenaam, apparaatkeuze, taal en recente ruimtes in de lokale opslag op je eigen apparaat; op de startpagina kun je die laten vergeten.",
        ),
    );
    s.say(
        "origin",
        w.heading(
            "No third party is involved: no external servers for connections, no fonts, scripts, analytics or error reporting from elsewhere. Everything comes from this server.",
            "Er is geen derde partij bij betrokken: geen externe servers voor verbindingen, geen lettertypen, scripts, statistieken of foutmeldingen van elders. Alles komt van deze server.",
        ),
    );
    s
}
