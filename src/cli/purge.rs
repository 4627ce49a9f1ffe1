//! `zaal purge [--now RFC3339]`: apply every stream's retention now, or as if it were `--now`.

use std::process::ExitCode;
use std::time::SystemTime;

use crate::config::Settings;
use crate::privacy::Stream;
use crate::privacy::retention::{purge, retention_of};
use crate::privacy::statement::{Language, human_duration};

pub fn run(settings: &Settings, now: Option<&str>) -> ExitCode {
    let now = match now {
        None => SystemTime::now(),
        Some(text) => match humantime::parse_rfc3339_weak(text.trim()) {
            Ok(at) => at,
            Err(_) => {
                eprintln!(
                    "zaal purge: --now `{text}` is not an RFC 3339 time, e.g. 2026-11-23T21:00:00Z"
                );
                return ExitCode::from(2);
            }
        },
    };
    match purge(&settings.logs_dir, now, &settings.retention) {
        Ok(report) => {
            println!(
                "Retention applied as of {} in {}:",
                humantime::format_rfc3339_seconds(now),
                settings.logs_dir.display()
            );
            for stream in Stream::ALL {
                let p = report.get(stream);
                println!(
                    "  {:<9} keeps {:<8} {} files deleted, {} rewritten, {} records removed",
                    stream.name(),
                    human_duration(retention_of(stream, &settings.retention), Language::English),
                    p.files_deleted,
                    p.files_rewritten,
                    p.records_removed
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("zaal purge: {e}");
            ExitCode::FAILURE
        }
    }
}
