//! The HTTP listener, plain or TLS: accepts TCP connections, bounded in number (in all and per
//! address, before anything is read), then, with TLS, the handshake (each in a task of its own,
//! bounded in number and time), then HTTP/1.1 or HTTP/2 with upgrades (the WebSocket), served
//! by the router.
//!
//! A slow or silent client holds up nobody: a request's head must arrive within
//! `limits.header_timeout` (also while a kept-alive connection waits for its next request), and
//! a failed handshake or a broken connection closes that connection and nothing else. It must
//! never read a request itself; that is the router's.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::extract::connect_info::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::prefixed::Prefixed;
use crate::config::LimitSettings;
use crate::occupancy::{Full, Occupancy};
use crate::privacy::pii::canonical_ip;
use crate::stats::refusals::{Limit, Refusals};

/// A client that has not finished its TLS handshake within this time is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// On shutdown, open connections get this long to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 streams one connection may have open at once.
const MAX_STREAMS: u32 = 100;

/// What a listener needs besides its socket and its routes.
#[derive(Clone)]
pub struct Listening {
    pub limits: LimitSettings,
    /// TCP peers whose connections carry many clients: counted in the total only.
    pub trusted_proxies: Arc<[std::net::IpAddr]>,
    pub refusals: Arc<Refusals>,
    /// Where TLS clients that speak TURN rather than HTTP go (TURN over TLS on this port).
    pub turn: Option<crate::sfu::turn::TurnStreams>,
}

/// Serves `app` on `listener`, over TLS when `tls` is given, until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    listening: Listening,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    // Every connection's task, so that shutdown can wait for them; finished ones are reaped as
    // the loop goes.
    let mut tasks = tokio::task::JoinSet::new();
    let limits = listening.limits;
    let connections = Occupancy::new(limits.http_connections, limits.http_connections_per_address);
    let handshakes = Arc::new(Semaphore::new(limits.tls_handshakes));
    let mut stopped = stop.clone();
    let stopping = async move {
        let _ = stopped.wait_for(|stopping| *stopping).await;
    };
    tokio::pin!(stopping);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or memory: wait a little rather than spin.
                    tracing::warn!(error = %e, "cannot accept an HTTP connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            () = &mut stopping => break,
        };
        let ip = canonical_ip(peer.ip());
        let per_address = (!listening.trusted_proxies.contains(&ip)).then_some(ip);
        let seat = match connections.take(per_address) {
            Ok(seat) => seat,
            Err(full) => {
                listening.refusals.count(match full {
                    Full::Total => Limit::HttpConnections,
                    Full::Address => Limit::HttpConnectionsPerAddress,
                });
                // Closed unread: a refused connection costs nothing more.
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let stop = stop.clone();
        let refusals = listening.refusals.clone();
        match &tls {
            None => {
                tasks.spawn(async move {
                    http(limits, app, peer, TokioIo::new(tcp), false, stop, &refusals).await;
                    drop(seat);
                });
            }
            Some(acceptor) => {
                let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                    refusals.count(Limit::TlsHandshakes);
                    continue;
                };
                let acceptor = acceptor.clone();
                let turn = listening.turn.clone();
                tasks.spawn(async move {
                    let stream =
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(stream)) => stream,
                            _ => return,
                        };
                    drop(permit);
                    let alpn = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                    match (alpn, turn) {
                        // A browser's TURN client offers no ALPN, and every browser's web
                        // request does: only a client without one may be TURN, and its first
                        // bytes say whether it is.
                        (None, Some(turn)) => {
                            let Some((first, stream)) =
                                first_bytes(stream, limits.header_timeout).await
                            else {
                                return;
                            };
                            if first.first().is_some_and(|b| *b < 4) {
                                drop(seat);
                                turn.serve_tls(Prefixed::new(first, stream), peer).await;
                            } else {
                                let io = TokioIo::new(Prefixed::new(first, stream));
                                http(limits, app, peer, io, false, stop, &refusals).await;
                                drop(seat);
                            }
                        }
                        (alpn, _) => {
                            let h2 = alpn.as_deref() == Some(b"h2");
                            http(limits, app, peer, TokioIo::new(stream), h2, stop, &refusals)
                                .await;
                            drop(seat);
                        }
                    }
                });
            }
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

/// The first bytes a client sends after its handshake (within `within`), and the stream to read
/// on; `None` when it sends nothing in time or closes.
async fn first_bytes<S: AsyncRead + Unpin>(
    mut stream: S,
    within: Duration,
) -> Option<(bytes::BytesMut, S)> {
    use tokio::io::AsyncReadExt;
    let mut first = bytes::BytesMut::with_capacity(2048);
    match tokio::time::timeout(within, stream.read_buf(&mut first)).await {
        Ok(Ok(n)) if n > 0 => Some((first, stream)),
        _ => None,
    }
}

/// One connection's HTTP, with the client's address for the router and the timeouts applied,
/// until it ends; a header timeout is counted. HTTP/2 only where TLS's ALPN chose it: no
/// sniffing of the first bytes, which would wait for a silent client without a timeout.
async fn http<I>(
    limits: LimitSettings,
    app: Router,
    peer: SocketAddr,
    io: TokioIo<I>,
    h2: bool,
    stop: watch::Receiver<bool>,
    refusals: &Refusals,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service =
        TowerToHyperService::new(app.map_request(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        }));
    let ended = if h2 {
        let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .max_concurrent_streams(MAX_STREAMS)
            .keep_alive_interval(limits.header_timeout)
            .keep_alive_timeout(limits.header_timeout);
        let connection = builder.serve_connection(io, service);
        until_stopped(connection, stop, |c| c.graceful_shutdown()).await
    } else {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout);
        let connection = builder.serve_connection(io, service).with_upgrades();
        until_stopped(connection, stop, |c| c.graceful_shutdown()).await
    };
    if let Err(error) = ended
        && error.is_timeout()
    {
        refusals.count(Limit::HeaderTimeout);
    }
}

/// Drives a connection to its end; once the server stops, it is asked to finish what it has
/// in hand and take nothing more.
async fn until_stopped<C: Future>(
    connection: C,
    mut stop: watch::Receiver<bool>,
    shut_down: impl FnOnce(Pin<&mut C>),
) -> C::Output {
    tokio::pin!(connection);
    let stopping = async move {
        let _ = stop.wait_for(|stopping| *stopping).await;
    };
    tokio::select! {
        ended = &mut connection => ended,
        () = stopping => {
            shut_down(connection.as_mut());
            connection.await
        }
    }
}
