//! `zaal subject export|erase (--name NAME | --ip ADDRESS)`: data-subject access and erasure
//! across every retained log record. Prints JSON, for the operator's answer to the request.

use std::net::IpAddr;
use std::process::ExitCode;

use serde_json::{Map, Value, json};

use crate::config::Settings;
use crate::privacy::subject::{Subject, erase, export};

pub fn run(
    settings: &Settings,
    erase_records: bool,
    name: Option<&str>,
    ip: Option<&str>,
) -> ExitCode {
    let (subject, described) = match (name, ip) {
        (Some(name), None) if !name.trim().is_empty() => {
            (Subject::Name(name.to_string()), json!({"name": name}))
        }
        (None, Some(ip)) => match ip.trim().parse::<IpAddr>() {
            Ok(addr) => (Subject::Ip(addr), json!({"ip": addr.to_string()})),
            Err(_) => {
                eprintln!("zaal subject: `{ip}` is not an IP address");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("zaal subject: give exactly one of --name NAME or --ip ADDRESS");
            return ExitCode::from(2);
        }
    };
    let dir = &settings.logs_dir;
    let output = if erase_records {
        erase(dir, &subject).map(|erased| {
            let counts: Map<String, Value> = erased
                .into_iter()
                .map(|(stream, n)| (stream.name().to_string(), json!(n)))
                .collect();
            json!({"subject": described, "erased": counts})
        })
    } else {
        export(dir, &subject).map(|found| {
            let records: Map<String, Value> = found
                .into_iter()
                .map(|(stream, records)| (stream.name().to_string(), Value::Array(records)))
                .collect();
            json!({"subject": described, "records": records})
        })
    };
    match output {
        Ok(value) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("zaal subject: {e}");
            ExitCode::FAILURE
        }
    }
}
