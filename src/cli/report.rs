//! `zaal report [--from DATE] [--to DATE] [--format json|csv] [--period day|week|month]`:
//! usage without identifiers (SPEC P11).

use std::process::ExitCode;

use serde_json::json;

use crate::config::{Settings, UsagePeriod};
use crate::stats::usage::{Usage, parse_day, to_csv};

pub fn run(
    settings: &Settings,
    from: Option<&str>,
    to: Option<&str>,
    format: &str,
    period: Option<&str>,
) -> ExitCode {
    let day = |flag: &str, value: Option<&str>| match value {
        None => Ok(None),
        Some(v) => parse_day(v.trim())
            .map(Some)
            .ok_or_else(|| format!("{flag} `{v}` is not a date; write YYYY-MM-DD")),
    };
    let period = match period {
        None => Ok(settings.usage_period),
        Some(p) => {
            UsagePeriod::parse(p).ok_or_else(|| format!("--period `{p}`: day, week or month"))
        }
    };
    let (from, to, period) = match (day("--from", from), day("--to", to), period) {
        (Ok(f), Ok(t), Ok(p)) => (f, t, p),
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => {
            eprintln!("zaal report: {e}");
            return ExitCode::from(2);
        }
    };
    let rows = match Usage::open(&settings.data_dir).and_then(|u| u.report(from, to, period)) {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("zaal report: {e}");
            return ExitCode::FAILURE;
        }
    };
    match format {
        "csv" => print!("{}", to_csv(&rows)),
        "json" => println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "period": match period {
                    UsagePeriod::Day => "day",
                    UsagePeriod::Week => "week",
                    UsagePeriod::Month => "month",
                },
                "from": from.map(|d| d.to_string()),
                "to": to.map(|d| d.to_string()),
                "usage": rows,
            }))
            .unwrap_or_default()
        ),
        other => {
            eprintln!("zaal report: --format `{other}`: json or csv");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
