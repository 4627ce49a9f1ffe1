//! `zaal serve`: run the server until SIGINT or SIGTERM.

use std::process::ExitCode;

/// Prints a line for the operator. A closed stdout (a supervisor that stopped reading) must
/// never take the server down, so write errors are ignored.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

use crate::config::Settings;
use crate::privacy::init_logging;
use crate::privacy::pii::{PiiPolicy, install_policy};
use crate::privacy::statement::{Language, placeholders};
use crate::server::Server;
use crate::store::Store;

pub fn run(settings: Settings) -> ExitCode {
    install_policy(PiiPolicy {
        ip_mode: settings.privacy.ip_mode,
        log_names: settings.privacy.log_names,
    });
    let _logs = match init_logging(&settings.logs_dir) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!(
                "zaal: cannot write logs under {}: {e}",
                settings.logs_dir.display()
            );
            return ExitCode::FAILURE;
        }
    };
    warn_of_open_dirs(&settings);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("zaal")
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("zaal: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let setup_ttl = settings.auth.setup_link_ttl;
        let data_dir = settings.data_dir.clone();
        let statement_settings = settings.clone();
        let server = match Server::start(settings).await {
            Ok(server) => server,
            Err(e) => {
                eprintln!("zaal: {e}");
                return ExitCode::FAILURE;
            }
        };
        say!(
            "Zaal listening on {} (media on udp {})",
            server.public_url,
            server.media_addr
        );
        if let Some(addr) = server.media_tcp_addr {
            say!("Media over TCP, for networks that block UDP, on tcp {addr}.");
        }
        if let Some(addr) = server.turn_addr {
            say!("TURN, relaying only to this server's media, on udp {addr}.");
        }
        match &server.tls_summary {
            Some(summary) => say!("{summary}."),
            None => say!(
                "HTTPS is off (plain HTTP, for localhost or behind a TLS-terminating proxy): set \
                 tls.cert and tls.key, tls.self_signed = true, or an https:// http.public_url \
                 for certificates from ACME to turn it on."
            ),
        }
        if let Some(addr) = server.redirect_addr {
            say!("Redirecting plain HTTP on {addr} to {}.", server.public_url);
        }
        say!(
            "Privacy statement at {}/privacy: {}",
            server.public_url,
            server.statement_edition.line(Language::English)
        );
        for missing in placeholders(&statement_settings) {
            eprintln!(
                "zaal: note: `{}` is empty, so the privacy statement shows a placeholder for {}",
                missing.key, missing.what
            );
        }
        if let Err(e) = offer_setup_link(&data_dir, &server.public_url, setup_ttl) {
            eprintln!("zaal: {e}");
        }
        let health = server.health.clone();
        tokio::select! {
            () = wait_for_signal() => {
                say!("Zaal is stopping.");
                server.stop().await;
                ExitCode::SUCCESS
            }
            part = health.wait_for_failure() => {
                eprintln!(
                    "zaal: the {part} stopped unexpectedly; exiting for the supervisor to start \
                     Zaal again"
                );
                server.stop().await;
                // EX_SOFTWARE: an internal error, not a configuration the operator must fix.
                ExitCode::from(70)
            }
        }
    })
}

/// Says so when `data.dir` or `logs.dir` lets other users in. Zaal makes both `0700` when it
/// creates them, but a folder the operator made keeps the mode they gave it (a log shipper may
/// need group access), so this is a notice and never a `chmod`.
fn warn_of_open_dirs(settings: &Settings) {
    for (key, dir) in [
        ("data.dir", &settings.data_dir),
        ("logs.dir", &settings.logs_dir),
    ] {
        if let Some(mode) = crate::private_fs::existing_dir_is_open(dir) {
            eprintln!(
                "zaal: note: {key} {} has mode {mode:o}, so other users may enter it; the files \
                 in it are 0600 and it is left as it is; `chmod 700` it to keep even their names \
                 private",
                dir.display()
            );
        }
    }
}

/// On a first start (no host yet), prints the one-time link to create the first host.
fn offer_setup_link(
    data_dir: &std::path::Path,
    public_url: &str,
    ttl: std::time::Duration,
) -> Result<(), crate::store::StoreError> {
    let store = Store::open(data_dir)?;
    if store.host_count()? > 0 {
        return Ok(());
    }
    let token = store.create_setup_link(ttl)?;
    say!(
        "No host account exists yet. Within {}, open this one-time link to create the first host:\n  {public_url}/setup#token={token}\n(or run `zaal user add NAME`).",
        humantime::format_duration(ttl)
    );
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
