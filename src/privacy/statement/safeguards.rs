//! How the data is protected and who receives it: each safeguard is listed only while the code
//! or the configuration has it on, and the disclosure section names a processor only when the
//! operator configured one (the code itself uses none).

use super::{Section, Writer};
use crate::privacy::retention::PURGE_INTERVAL;

pub(super) fn security(w: &Writer) -> Section {
    let settings = w.settings;
    let mut s = Section::new(
        "security",
        w.heading(
            "How the data is protected",
            "Hoe de gegevens beschermd zijn",
        ),
    );
    let every = w.duration(PURGE_INTERVAL);
    s.say(
        "minimal",
        w.pick(
            format!("As little data as possible is kept, and every record is erased automatically when its retention period ends (the server checks every {every})."),
            format!("Er wordt zo min mogelijk bewaard, en elk gegeven wordt vanzelf gewist als de bewaartermijn voorbij is (de server controleert dat elke {every})."),
        ),
    );
    s.say(
        "own_server",
        w.heading(
            "The service runs on its own server and connects to no outside service; its web pages load nothing from anywhere else, which the browser is told to enforce (a Content-Security-Policy).",
            "De dienst draait op een eigen server en maakt geen verbinding met diensten van buiten; de webpagina's laden niets van elders, en de browser krijgt de opdracht dat af te dwingen (een Content-Security-Policy).",
        ),
    );
    let creation = if settings.focus.wait_for_host {
        w.heading(
            "Only authorised users can start a meeting: hosts who log in, or who hold a link signed for them. Participants who arrive first wait until a host is there.",
            "Alleen bevoegde gebruikers kunnen een vergadering beginnen: gastheren en gastvrouwen die inloggen of een voor hen ondertekende link hebben. Wie eerder binnenkomt, wacht tot er een gastheer of gastvrouw is.",
        )
    } else {
        w.heading(
            "Anyone who knows the address of a room can start a meeting in it; hosts can lead it (a waiting room, muting, removing participants).",
            "Iedereen die het adres van een ruimte kent, kan er een vergadering in beginnen; gastheren en gastvrouwen kunnen die leiden (een wachtruimte, dempen, deelnemers verwijderen).",
        )
    };
    s.say("creation", creation);
    let https = settings.tls.enabled()
        || settings
            .http
            .public_url
            .as_deref()
            .is_some_and(|url| url.starts_with("https://"));
    if https {
        s.say(
            "tls",
            w.heading(
                "The web pages and everything said to the server travel encrypted (HTTPS).",
                "De webpagina's en alles wat naar de server gaat, reizen versleuteld (HTTPS).",
            ),
        );
    }
    s.say(
        "passwords",
        w.heading(
            "Hosts' passwords are stored only as argon2 hashes, and each wrong password makes the next attempt wait longer.",
            "Wachtwoorden van gastheren en gastvrouwen worden alleen als argon2-hash bewaard, en na elk verkeerd wachtwoord moet de volgende poging langer wachten.",
        ),
    );
    s.say(
        "files",
        w.heading(
            "The logs and the database are created so that only the service itself can read them on the server.",
            "De logboeken en de database worden zo aangemaakt dat alleen de dienst zelf ze op de server kan lezen.",
        ),
    );
    s
}

pub(super) fn disclosure(w: &Writer) -> Section {
    let p = &w.settings.privacy;
    let mut s = Section::new(
        "disclosure",
        w.heading("Who receives data", "Aan wie gegevens worden verstrekt"),
    );
    let organisation = w.organisation();
    s.say(
        "nobody",
        w.pick(
            format!("{organisation} gives personal data to no one, unless a law obliges it to, for example a lawful demand of the police or the public prosecutor."),
            format!("{organisation} geeft persoonsgegevens aan niemand, tenzij een wet daartoe verplicht, bijvoorbeeld een rechtmatige vordering van de politie of het Openbaar Ministerie."),
        ),
    );
    let processors = if p.hosting_provider.is_empty() {
        w.heading(
            "There are no processors: the service uses no outside servers or services (no external STUN or TURN servers, content networks, fonts, analytics or error reporting), so no one else handles your data.",
            "Er zijn geen verwerkers: de dienst gebruikt geen servers of diensten van buiten (geen externe STUN- of TURN-servers, contentnetwerken, lettertypen, statistieken of foutmeldingen), dus niemand anders krijgt je gegevens in handen.",
        )
    } else {
        w.pick(
            format!("The only processor is {}, which runs the server: it may handle the data only on the instructions of {organisation}, under a processing agreement, and not for any purpose of its own. The service itself uses no other outside servers or services.", p.hosting_provider),
            format!("De enige verwerker is {}, die de server beheert: die mag de gegevens alleen in opdracht van {organisation} verwerken, onder een verwerkersovereenkomst, en niet voor eigen doelen. De dienst zelf gebruikt geen andere servers of diensten van buiten.", p.hosting_provider),
        )
    };
    s.say("processors", processors);
    s
}
