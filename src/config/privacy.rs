//! The `[privacy]` section: how personal data is written (IP mode, names in the technical
//! stream) and what only the operator knows for the privacy statement (who is responsible, how
//! to reach them, the legal basis, where the server stands, how fast requests are answered).
//!
//! Only parsing and checking live here; `privacy::statement` turns the values into sentences.
//! A value the statement would have to guess at (an unknown country, a legal basis "other"
//! without its text, an answer term beyond the GDPR's month) is refused with its key, so the
//! statement never says something the operator did not mean.

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrivacy {
    pub ip_mode: String,
    pub log_names: bool,
    pub controller: String,
    pub contact_email: String,
    pub dpo: String,
    pub address: String,
    pub phone: String,
    pub kvk: String,
    pub complaint_email: String,
    pub legal_basis: String,
    pub legal_basis_other: String,
    pub hosting_country: String,
    pub hosting_provider: String,
    pub response_days: u32,
}

/// How client IP addresses are written to the streams that may hold them (SPEC P2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpMode {
    Full,
    Truncated,
    None,
}

/// The ground in article 6(1) of the GDPR on which the service processes personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegalBasis {
    /// (f): the usual ground of an association or a company's own meetings.
    LegitimateInterest,
    /// (e): a public school or institution doing its public task.
    PublicTask,
    /// (b): meetings the participant has a contract for (a paid course).
    Contract,
    /// (a): the participant's consent, which they may withdraw.
    Consent,
    /// (c): a legal obligation of the organisation.
    LegalObligation,
    /// Anything else, in the operator's words (`privacy.legal_basis_other`).
    Other(String),
}

/// A country the server may stand in, with its name in both languages of the statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Country {
    pub code: &'static str,
    pub english: &'static str,
    pub dutch: &'static str,
}

/// The countries of the EU and the EEA, and the two neighbours with an adequacy decision that
/// Dutch organisations host in: the places a statement can name without a transfer section.
const COUNTRIES: &[Country] = &[
    country("AT", "Austria", "Oostenrijk"),
    country("BE", "Belgium", "België"),
    country("BG", "Bulgaria", "Bulgarije"),
    country("CH", "Switzerland", "Zwitserland"),
    country("CY", "Cyprus", "Cyprus"),
    country("CZ", "Czechia", "Tsjechië"),
    country("DE", "Germany", "Duitsland"),
    country("DK", "Denmark", "Denemarken"),
    country("EE", "Estonia", "Estland"),
    country("ES", "Spain", "Spanje"),
    country("FI", "Finland", "Finland"),
    country("FR", "France", "Frankrijk"),
    country("GB", "the United Kingdom", "het Verenigd Koninkrijk"),
    country("GR", "Greece", "Griekenland"),
    country("HR", "Croatia", "Kroatië"),
    country("HU", "Hungary", "Hongarije"),
    country("IE", "Ireland", "Ierland"),
    country("IS", "Iceland", "IJsland"),
    country("IT", "Italy", "Italië"),
    country("LI", "Liechtenstein", "Liechtenstein"),
    country("LT", "Lithuania", "Litouwen"),
    country("LU", "Luxembourg", "Luxemburg"),
    country("LV", "Latvia", "Letland"),
    country("MT", "Malta", "Malta"),
    country("NL", "the Netherlands", "Nederland"),
    country("NO", "Norway", "Noorwegen"),
    country("PL", "Poland", "Polen"),
    country("PT", "Portugal", "Portugal"),
    country("RO", "Romania", "Roemenië"),
    country("SE", "Sweden", "Zweden"),
    country("SI", "Slovenia", "Slovenië"),
    country("SK", "Slovakia", "Slowakije"),
];

const fn country(code: &'static str, english: &'static str, dutch: &'static str) -> Country {
    Country {
        code,
        english,
        dutch,
    }
}

/// The GDPR (article 12(3)) gives a controller one month to answer a data-subject request.
pub const MAX_RESPONSE_DAYS: u32 = 30;

/// Longest free text the statement takes from one setting: a name or an address, not an essay.
const MAX_TEXT: usize = 300;

#[derive(Debug, Clone)]
pub struct PrivacySettings {
    pub ip_mode: IpMode,
    pub log_names: bool,
    /// The organisation responsible (the "controller"); empty: not configured.
    pub controller: String,
    pub contact_email: String,
    pub dpo: String,
    pub address: String,
    pub phone: String,
    /// The chamber-of-commerce (KvK) number, eight digits, or empty.
    pub kvk: String,
    /// Where complaints go first; empty: `contact_email`.
    pub complaint_email: String,
    pub legal_basis: LegalBasis,
    /// Where the server stands; `None`: not stated.
    pub hosting_country: Option<Country>,
    /// Who runs the server's machine when it is not the organisation's own; empty: its own.
    pub hosting_provider: String,
    /// Days within which a data-subject request is answered.
    pub response_days: u32,
}

pub(super) fn privacy_settings(raw: &RawPrivacy) -> Result<PrivacySettings, ConfigError> {
    let ip_mode = match raw.ip_mode.as_str() {
        "full" => IpMode::Full,
        "truncated" => IpMode::Truncated,
        "none" => IpMode::None,
        other => {
            return Err(invalid(
                "privacy.ip_mode",
                format!("`{other}`: expected full, truncated or none"),
            ));
        }
    };
    let legal_basis = match raw.legal_basis.trim() {
        "legitimate_interest" => LegalBasis::LegitimateInterest,
        "public_task" => LegalBasis::PublicTask,
        "contract" => LegalBasis::Contract,
        "consent" => LegalBasis::Consent,
        "legal_obligation" => LegalBasis::LegalObligation,
        "other" => match text("privacy.legal_basis_other", &raw.legal_basis_other)? {
            other if other.is_empty() => {
                return Err(invalid(
                    "privacy.legal_basis_other",
                    "must say which legal basis applies when privacy.legal_basis is \"other\"",
                ));
            }
            other => LegalBasis::Other(other),
        },
        other => {
            return Err(invalid(
                "privacy.legal_basis",
                format!(
                    "`{other}`: expected legitimate_interest, public_task, contract, consent, \
                     legal_obligation or other"
                ),
            ));
        }
    };
    if !matches!(legal_basis, LegalBasis::Other(_)) && !raw.legal_basis_other.trim().is_empty() {
        return Err(invalid(
            "privacy.legal_basis_other",
            "only used when privacy.legal_basis is \"other\"",
        ));
    }
    let hosting_country = match raw.hosting_country.trim() {
        "" => None,
        code => Some(
            COUNTRIES
                .iter()
                .copied()
                .find(|c| c.code.eq_ignore_ascii_case(code))
                .ok_or_else(|| {
                    invalid(
                        "privacy.hosting_country",
                        format!(
                            "`{code}`: expected the two-letter code of a country of the EU or \
                             the EEA, CH or GB (e.g. NL)"
                        ),
                    )
                })?,
        ),
    };
    let kvk = text("privacy.kvk", &raw.kvk)?;
    let eight_digits = kvk.len() == 8 && kvk.bytes().all(|b| b.is_ascii_digit());
    if !(kvk.is_empty() || eight_digits) {
        return Err(invalid("privacy.kvk", "a KvK number has eight digits"));
    }
    if !(1..=MAX_RESPONSE_DAYS).contains(&raw.response_days) {
        return Err(invalid(
            "privacy.response_days",
            format!("between 1 and {MAX_RESPONSE_DAYS} (the GDPR allows one month)"),
        ));
    }
    Ok(PrivacySettings {
        ip_mode,
        log_names: raw.log_names,
        controller: text("privacy.controller", &raw.controller)?,
        contact_email: email("privacy.contact_email", &raw.contact_email)?,
        dpo: text("privacy.dpo", &raw.dpo)?,
        address: text("privacy.address", &raw.address)?,
        phone: text("privacy.phone", &raw.phone)?,
        kvk,
        complaint_email: email("privacy.complaint_email", &raw.complaint_email)?,
        legal_basis,
        hosting_country,
        hosting_provider: text("privacy.hosting_provider", &raw.hosting_provider)?,
        response_days: raw.response_days,
    })
}

/// A free text for the statement: trimmed, one line, bounded.
fn text(key: &'static str, value: &str) -> Result<String, ConfigError> {
    let value = value.trim();
    if value.chars().count() > MAX_TEXT {
        return Err(invalid(key, format!("at most {MAX_TEXT} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(key, "must be one line of text"));
    }
    Ok(value.to_string())
}

/// An address a visitor writes to: only its shape is checked (one `@`, no spaces).
fn email(key: &'static str, value: &str) -> Result<String, ConfigError> {
    let value = text(key, value)?;
    if value.is_empty() {
        return Ok(value);
    }
    let shaped = match value.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.contains('@')
                && !value.contains(char::is_whitespace)
        }
        None => false,
    };
    if !shaped {
        return Err(invalid(
            key,
            format!("`{value}` is not an e-mail address (e.g. privacy@school.example)"),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use std::collections::BTreeMap;

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let env: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::load_with_env(None, Some(env))
    }

    #[test]
    fn the_defaults_are_true_of_any_server() {
        let p = load(&[]).unwrap().privacy;
        assert_eq!(p.legal_basis, LegalBasis::LegitimateInterest);
        assert_eq!(p.hosting_country, None);
        assert!(p.hosting_provider.is_empty());
        assert_eq!(p.response_days, 30);
    }

    #[test]
    fn operator_facts_are_parsed() {
        let p = load(&[
            ("ZAAL__PRIVACY__HOSTING_COUNTRY", "nl"),
            ("ZAAL__PRIVACY__LEGAL_BASIS", "other"),
            (
                "ZAAL__PRIVACY__LEGAL_BASIS_OTHER",
                "artikel 6 lid 1 sub e AVG",
            ),
            ("ZAAL__PRIVACY__KVK", "41149486"),
            ("ZAAL__PRIVACY__RESPONSE_DAYS", "14"),
        ])
        .unwrap()
        .privacy;
        assert_eq!(p.hosting_country.unwrap().dutch, "Nederland");
        assert_eq!(
            p.legal_basis,
            LegalBasis::Other("artikel 6 lid 1 sub e AVG".into())
        );
        assert_eq!(p.kvk, "41149486");
        assert_eq!(p.response_days, 14);
    }

    #[test]
    fn values_the_statement_would_have_to_guess_at_are_refused() {
        for (key, value, named) in [
            (
                "ZAAL__PRIVACY__LEGAL_BASIS",
                "because",
                "privacy.legal_basis",
            ),
            (
                "ZAAL__PRIVACY__LEGAL_BASIS",
                "other",
                "privacy.legal_basis_other",
            ),
            (
                "ZAAL__PRIVACY__HOSTING_COUNTRY",
                "US",
                "privacy.hosting_country",
            ),
            ("ZAAL__PRIVACY__KVK", "1234", "privacy.kvk"),
            ("ZAAL__PRIVACY__RESPONSE_DAYS", "0", "privacy.response_days"),
            (
                "ZAAL__PRIVACY__RESPONSE_DAYS",
                "31",
                "privacy.response_days",
            ),
            (
                "ZAAL__PRIVACY__CONTACT_EMAIL",
                "privacy at school",
                "privacy.contact_email",
            ),
            (
                "ZAAL__PRIVACY__COMPLAINT_EMAIL",
                "@school.example",
                "privacy.complaint_email",
            ),
        ] {
            let error = load(&[(key, value)]).unwrap_err().to_string();
            assert!(error.contains(named), "{key}={value}: {error}");
        }
        let error = load(&[("ZAAL__PRIVACY__LEGAL_BASIS_OTHER", "x")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("only used when"), "{error}");
        let long = "x".repeat(MAX_TEXT + 1);
        assert!(load(&[("ZAAL__PRIVACY__CONTROLLER", &long)]).is_err());
    }
}
