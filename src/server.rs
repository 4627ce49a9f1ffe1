//! A running Zaal: the SFU thread, the focus task and the HTTP server, wired together.
//!
//! Used by `zaal serve`; the wiring lives here so that the parts stay ignorant of each other's
//! construction. It must never contain protocol logic of its own.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::config::Settings;
use crate::focus::Focus;
use crate::health::Health;
use crate::privacy::statement::{self, Edition, Published};
use crate::sfu::turn::{AllocationLimits, TurnSecret};
use crate::sfu::{MediaConfig, Sfu, TurnOptions};
use crate::signalling::listener::{self, Listening};
use crate::signalling::origin::Origins;
use crate::signalling::tls::{self, Tls, TlsError};
use crate::signalling::turn_offer::TurnOffer;
use crate::signalling::{AppState, Occupancy, SharedThrottle, router};
use crate::stats::refusals::Refusals;
use crate::stats::usage::{Usage, UsageError};
use crate::store::Store;

/// A started server.
pub struct Server {
    pub http_addr: SocketAddr,
    /// The first address media is advertised on.
    pub media_addr: SocketAddr,
    /// The first address of the ICE-TCP port, when it is on.
    pub media_tcp_addr: Option<SocketAddr>,
    pub public_url: String,
    /// How the listener does TLS, for the operator; `None`: plain HTTP.
    pub tls_summary: Option<String>,
    /// The redirect listener's address, when there is one.
    pub redirect_addr: Option<SocketAddr>,
    /// The privacy statement's edition being served.
    pub statement_edition: Edition,
    /// Where Zaal's own TURN server listens, when it is on.
    pub turn_addr: Option<SocketAddr>,
    /// Whether the media workers and the focus still run.
    pub health: Arc<Health>,
    focus: Focus,
    shutdown: watch::Sender<bool>,
    http: tokio::task::JoinHandle<std::io::Result<()>>,
    redirect: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _tls: Option<Tls>,
    purger: tokio::task::JoinHandle<()>,
    _sfu: Sfu,
}

/// Applies retention to the log streams; a failure is reported in the technical stream and
/// retried at the next interval.
async fn purge_logs(settings: &Settings) {
    let dir = settings.logs_dir.clone();
    let retention = settings.retention;
    let result = tokio::task::spawn_blocking(move || {
        crate::privacy::retention::purge(&dir, std::time::SystemTime::now(), &retention)
    })
    .await;
    match result {
        Ok(Ok(report)) => {
            let removed: usize = report.streams.iter().map(|(_, p)| p.records_removed).sum();
            if removed > 0 {
                tracing::info!(target: crate::privacy::TECHNICAL, event = "retention-purge", records_removed = removed);
            }
        }
        Ok(Err(e)) => tracing::error!(error = %e, "retention purge failed"),
        Err(e) => tracing::error!(error = %e, "retention purge failed"),
    }
}

/// Records the statement this configuration produces as served from today (a new edition when
/// its text changed) and renders its pages.
fn publish_statement(store: &Store, settings: &Settings) -> Result<Published, StartError> {
    let texts = statement::texts(settings);
    let today = time::OffsetDateTime::now_utc().date();
    let stored = store.publish_statement(
        &texts.digest,
        &texts.english,
        &texts.dutch,
        &statement::iso_day(today),
    )?;
    let edition = Edition::from_stored(stored.number, &stored.first_served).unwrap_or(Edition {
        number: stored.number,
        date: today,
    });
    Ok(Published::new(settings, edition))
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Usage(#[from] UsageError),
    #[error("cannot start the media port: {0}")]
    Media(std::io::Error),
    #[error("{0}")]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Http {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl Server {
    pub async fn start(settings: Settings) -> Result<Self, StartError> {
        // Retention applies from the first moment: nothing expired survives a restart.
        purge_logs(&settings).await;
        let store = Arc::new(Store::open(&settings.data_dir)?);
        let statement = Arc::new(publish_statement(&store, &settings)?);
        let statement_edition = statement.edition;
        let usage = Arc::new(Usage::open(&settings.data_dir)?);
        let (sfu_events_tx, sfu_events_rx) = mpsc::unbounded_channel();
        // Known only to this process: its credentials are good for as long as it runs.
        let turn_secret = {
            use rand::RngCore;
            let mut secret = [0u8; 32];
            rand::rng().fill_bytes(&mut secret);
            TurnSecret::new(secret)
        };
        let health = Arc::new(Health::default());
        let sfu = Sfu::start(
            MediaConfig {
                bind: settings.media.bind,
                port: settings.media.udp_port,
                advertise_ips: settings.media.advertise_ips.clone(),
                last_n: settings.media.last_n,
                workers: settings.media.workers,
                tcp_port: settings.media.tcp_port,
                tcp_connections: settings.limits.media_tcp_connections,
                tcp_connections_per_address: settings.limits.media_tcp_connections_per_address,
                turn: settings.turn.enabled.then(|| TurnOptions {
                    listen: settings.turn.listen,
                    realm: settings.turn.realm.clone(),
                    secret: turn_secret.clone(),
                    limits: AllocationLimits {
                        total: settings.limits.turn_allocations,
                        per_address: settings.limits.turn_allocations_per_address,
                        per_credential: settings.limits.turn_allocations_per_credential,
                    },
                }),
            },
            sfu_events_tx,
            health.clone(),
        )
        .map_err(StartError::Media)?;
        let media_addr = sfu.candidates()[0];
        let media_tcp_addr = sfu.tcp_candidates().first().copied();
        let turn_addr = sfu.turn_addr();
        let tls = Tls::start(&settings.tls, &settings.data_dir)?;
        let focus = Focus::start(
            settings.focus,
            usage,
            sfu.handle(),
            sfu_events_rx,
            health.clone(),
        );
        let listener = TcpListener::bind(settings.http.listen)
            .await
            .map_err(|source| StartError::Http {
                addr: settings.http.listen,
                source,
            })?;
        let http_addr = listener.local_addr().map_err(|source| StartError::Http {
            addr: settings.http.listen,
            source,
        })?;
        let public_url = settings.public_url(http_addr);
        let turn = turn_addr.map(|addr| {
            let offer = TurnOffer::embedded(
                turn_secret.clone(),
                settings.turn.credential_ttl,
                sfu.candidates(),
                addr.port(),
            );
            // With TLS on its own listener, TURN over TLS is served there too (by ALPN and
            // first bytes), for networks that let out nothing but HTTPS.
            match settings.tls.enabled() {
                true => offer.with_tls_on(&public_url),
                false => offer,
            }
        });
        let redirect_listener = match settings.tls.redirect_listen {
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Http { addr, source })?;
                let bound = listener
                    .local_addr()
                    .map_err(|source| StartError::Http { addr, source })?;
                Some((listener, bound))
            }
            None => None,
        };
        let purger = {
            let settings = settings.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(crate::privacy::retention::PURGE_INTERVAL);
                every.tick().await;
                loop {
                    every.tick().await;
                    purge_logs(&settings).await;
                }
            })
        };
        let throttle = || {
            Arc::new(SharedThrottle::new(
                settings.auth.login_delay,
                settings.auth.login_delay_max,
            ))
        };
        let (logins, room_passwords) = (throttle(), throttle());
        let limits = settings.limits;
        let refusals = Arc::new(Refusals::default());
        let origins = Origins::new(
            &public_url,
            http_addr,
            settings.tls.enabled(),
            &settings.http.allowed_origins,
        );
        let listening = Listening {
            limits,
            trusted_proxies: settings.http.trusted_proxies.clone().into(),
            refusals: refusals.clone(),
            turn: sfu.turn_streams(),
        };
        let state = AppState {
            store,
            focus: focus.clone(),
            settings: Arc::new(settings),
            public_url: public_url.clone().into(),
            sfu_counters: sfu.counters(),
            logins,
            room_passwords,
            password_checks: crate::signalling::PasswordChecks::new(),
            origins: Arc::new(origins),
            websockets: Occupancy::new(limits.websockets, limits.websockets_per_address),
            refusals,
            health: health.clone(),
            turn,
            statement,
        };
        let app = router(state);
        let (shutdown, stop) = watch::channel(false);
        let redirect_addr = redirect_listener.as_ref().map(|(_, addr)| *addr);
        let redirect = redirect_listener.map(|(listener, _)| {
            let tokens = tls.as_ref().map(|t| t.http01.clone()).unwrap_or_default();
            let routes = tls::redirect_router(&public_url, tokens);
            tokio::spawn(listener::serve(
                listener,
                None,
                routes,
                listening.clone(),
                stop.clone(),
            ))
        });
        let acceptor = tls.as_ref().map(|tls| tls.acceptor.clone());
        let http = tokio::spawn(listener::serve(listener, acceptor, app, listening, stop));
        Ok(Self {
            http_addr,
            media_addr,
            media_tcp_addr,
            public_url,
            tls_summary: tls.as_ref().map(|t| t.summary.clone()),
            statement_edition,
            turn_addr,
            redirect_addr,
            health,
            focus,
            shutdown,
            http,
            redirect,
            _tls: tls,
            purger,
            _sfu: sfu,
        })
    }

    /// Ends every conference (clients are told), then stops accepting requests.
    pub async fn stop(self) {
        self.purger.abort();
        self.focus.shutdown().await;
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.http).await;
        if let Some(redirect) = self.redirect {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), redirect).await;
        }
    }
}
