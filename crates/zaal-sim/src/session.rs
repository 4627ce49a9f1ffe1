//! A simulated participant's signalling and its task: the WebSocket join, and the loop that
//! drives the media connection, sends its streams on time and answers what the server says.
//! Every message it sends is a [`ClientMessage`] and every one it reads an [`Outbound`]: the
//! server's own types, so the simulation speaks exactly the protocol the server does.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use serde_json::Value;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_util::either::Either;
use zaal::signalling::protocol::{ClientMessage, Outbound, PROTOCOL_VERSION};

use crate::media::{AUDIO_PAYLOAD, Media, Which, receive_available, via_relay};
use crate::tcp_media::TcpMedia;
use crate::{Control, Observed, SimError, SimOptions, lock};

/// Media are sent on this clock: a packet of audio each tick, video every other one.
const TICK: Duration = Duration::from_millis(20);
/// The most server messages a participant keeps for the tests to read.
const MAX_KEPT_MESSAGES: usize = 10_000;

/// The signalling connection: plain, or TLS for an `https://` server.
pub(crate) type Connection = Either<TcpStream, TlsStream<TcpStream>>;
pub(crate) type WebSocket = WebSocketStream<Connection>;

/// A client message as a WebSocket frame.
pub(crate) fn text(message: &ClientMessage) -> Message {
    // Plain enums of strings and numbers: serialising them cannot fail.
    Message::text(serde_json::to_string(message).unwrap_or_default())
}

/// A server message, both as the tests record it and as the participant reads it.
fn read(text: &str) -> Option<(Value, Outbound)> {
    let raw: Value = serde_json::from_str(text).ok()?;
    let message = serde_json::from_value(raw.clone()).ok()?;
    Some((raw, message))
}

/// How the server answered `join`.
pub(crate) enum Entered {
    Joined { raw: Value, joined: Box<Outbound> },
    Waiting { raw: Value, reason: String },
}

/// Opens the WebSocket from the configured local address and joins.
pub(crate) async fn connect(options: &SimOptions) -> Result<(WebSocket, Entered), SimError> {
    let url = format!(
        "{}/ws",
        options
            .server
            .replacen("http://", "ws://", 1)
            .replacen("https://", "wss://", 1)
    );
    // Connect from the configured local address, so that tests can tell this participant's
    // traffic apart (e.g. 127.0.0.23).
    let host = options
        .server
        .split("://")
        .nth(1)
        .unwrap_or_default()
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let server_addr = tokio::net::lookup_host(&host)
        .await?
        .next()
        .ok_or_else(|| SimError::Protocol(format!("cannot resolve {host}")))?;
    let tcp = if server_addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    tcp.bind(SocketAddr::new(options.local_ip, 0))?;
    let tcp = tcp.connect(server_addr).await?;
    let stream: Connection = if options.server.starts_with("https://") {
        let config = options
            .tls
            .clone()
            .ok_or_else(|| SimError::Protocol("an https:// server needs SimOptions::tls".into()))?;
        let name = host
            .rsplit_once(':')
            .map_or(host.as_str(), |(name, _)| name);
        let name = ServerName::try_from(name.trim_matches(['[', ']']).to_string())
            .map_err(|e| SimError::Protocol(e.to_string()))?;
        Either::Right(TlsConnector::from(config).connect(name, tcp).await?)
    } else {
        Either::Left(tcp)
    };
    let mut request = url.into_client_request()?;
    if let Some(cookie) = &options.session_cookie
        && let Ok(value) = cookie.parse()
    {
        request.headers_mut().insert("cookie", value);
    }
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream).await?;
    let join = ClientMessage::Join {
        version: PROTOCOL_VERSION,
        room: options.room.clone(),
        name: options.name.clone(),
        audio_muted: !options.send_audio,
        video_muted: !options.send_video,
        jwt: options.jwt.clone(),
        password: options.password.clone(),
        rejoin_key: options.rejoin_key.clone(),
        resume: options.resume.clone(),
    };
    ws.send(text(&join)).await?;
    let entered = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(message) = ws.next().await {
            let Message::Text(frame) = message? else {
                continue;
            };
            let (raw, message) =
                read(&frame).ok_or_else(|| SimError::Protocol("not a server message".into()))?;
            match message {
                joined @ Outbound::Joined { .. } => {
                    return Ok(Entered::Joined {
                        raw,
                        joined: Box::new(joined),
                    });
                }
                Outbound::Waiting { reason } => {
                    return Ok(Entered::Waiting {
                        raw,
                        reason: reason.into_owned(),
                    });
                }
                Outbound::Error { code, message, .. } => {
                    return Err(SimError::Protocol(format!("{code}: {message}")));
                }
                _ => {}
            }
        }
        Err(SimError::Protocol("closed before joined".into()))
    })
    .await
    .map_err(|_| SimError::Timeout("joined"))??;
    Ok((ws, entered))
}

/// Takes in what `joined` says; returns the participant's and the conference's ids.
pub(crate) fn on_joined(joined: &Outbound, raw: Value, o: &mut Observed) -> (String, String) {
    if let Outbound::Joined {
        you,
        conference,
        resume_token,
        resumed,
        role,
        participants,
        ..
    } = joined
    {
        for p in participants {
            o.participants.insert(p.id.clone(), p.name.clone());
        }
        o.you = you.clone();
        o.conference = conference.clone();
        o.role = role.to_string();
        o.resume_token = resume_token.clone();
        o.resumed = *resumed;
        o.waiting = None;
    }
    o.messages.push(raw);
    (o.you.clone(), o.conference.clone())
}

/// Answers the server's offer: the SDP of the answer.
fn answer(media: &mut Media, sdp: String) -> Result<String, rtc::shared::error::Error> {
    let offer = RTCSessionDescription::offer(sdp)?;
    media.pc.set_remote_description(Instant::now(), offer)?;
    let answer = media.pc.create_answer(None)?;
    media.pc.set_local_description(Instant::now(), answer)?;
    Ok(media
        .pc
        .local_description()
        .map(|d| d.sdp)
        .unwrap_or_default())
}

/// Takes in one server message; returns what to send back, if anything.
fn on_message(
    raw: Value,
    message: Outbound,
    media: &mut Media,
    options: &SimOptions,
    observed: &Arc<Mutex<Observed>>,
) -> Option<ClientMessage> {
    if !matches!(
        message,
        Outbound::Offer { .. } | Outbound::Answer { .. } | Outbound::Joined { .. }
    ) {
        let mut o = lock(observed);
        if o.messages.len() < MAX_KEPT_MESSAGES {
            o.messages.push(raw.clone());
        }
    }
    match message {
        joined @ Outbound::Joined { .. } => {
            on_joined(&joined, raw, &mut lock(observed));
            media.offer().ok().map(|sdp| ClientMessage::Offer { sdp })
        }
        Outbound::SendVideo { max_height } => {
            media.send_video(max_height);
            None
        }
        Outbound::Answer { sdp } => {
            let sdp = via_relay(&sdp, options.media_relay);
            if let Ok(answer) = RTCSessionDescription::answer(sdp) {
                let _ = media.pc.set_remote_description(Instant::now(), answer);
                media.learn_payload_types();
            }
            None
        }
        Outbound::Offer { sdp } => {
            let sdp = via_relay(&sdp, options.media_relay);
            lock(observed).last_server_offer = Some(sdp.clone());
            let sdp = answer(media, sdp).ok()?;
            lock(observed).offers_answered += 1;
            Some(ClientMessage::Answer { sdp })
        }
        Outbound::Role { id, role } => {
            let mut o = lock(observed);
            if id == o.you {
                o.role = role.into_owned();
            }
            None
        }
        Outbound::ParticipantJoined { participant } => {
            lock(observed)
                .participants
                .insert(participant.id, participant.name);
            None
        }
        Outbound::ParticipantLeft { id } => {
            let mut o = lock(observed);
            o.participants.remove(&id);
            o.left.push(id);
            None
        }
        Outbound::Mute {
            id,
            audio_muted,
            video_muted,
        } => {
            lock(observed).mutes.insert(id, (audio_muted, video_muted));
            None
        }
        Outbound::Error { code, message, .. } => {
            lock(observed).errors.push((code.into_owned(), message));
            None
        }
        _ => None,
    }
}

/// The participant's task: until it leaves or the server ends the session.
pub(crate) async fn run(
    ws: WebSocket,
    socket: UdpSocket,
    mut media: Media,
    options: SimOptions,
    observed: Arc<Mutex<Observed>>,
    mut control: mpsc::UnboundedReceiver<Control>,
) {
    let (mut ws_tx, mut ws_rx) = ws.split();
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // GRO where the system offers it: the SFU sends a receiver's packets as runs of equal-sized
    // datagrams in one segmentation-offload send, and taking each run in one read is how a
    // remote browser's host would not burden the server's CPU with splitting it (on loopback the
    // receiving socket's work is charged to the sender). Without GRO, one datagram per read.
    let gro = quinn_udp::UdpSocketState::new((&socket).into()).ok();
    let mut buf = vec![0u8; 64 * 1024];
    let mut send_audio = options.send_audio;
    let mut send_video = options.send_video;
    let mut send_screen = true;
    let video_bytes_per_tick = (options.video_kbps as usize * 1000 / 8) / 50;
    let mut tick_count: u64 = 0;
    let mut network_down = false;
    let mut ws_alive = true;
    let mut tcp = TcpMedia::default();
    let ended = loop {
        // Everything the connection wants to send, and everything it has for us.
        while let Some(out) = media.pc.poll_write() {
            if network_down {
                continue;
            }
            if out.transport.transport_protocol == TransportProtocol::TCP {
                tcp.queue(out.transport.peer_addr, &out.message);
            } else {
                let _ = socket.send_to(&out.message, out.transport.peer_addr).await;
            }
        }
        tcp.flush().await;
        while let Some(event) = media.pc.poll_event() {
            match event {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                    lock(&observed).connected = state == RTCPeerConnectionState::Connected;
                }
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    let kind = media
                        .pc
                        .rtp_receiver(init.receiver_id)
                        .map(|r| r.track().kind())
                        .unwrap_or(RtpCodecKind::Video);
                    if let Some(stream) = init.stream_ids.first() {
                        media.tracks.insert(init.track_id, (stream.clone(), kind));
                    }
                }
                _ => {}
            }
        }
        while let Some(TaggedRTCMessage { message, .. }) = media.pc.poll_read() {
            match message {
                RTCMessage::RtpPacket(track_id, packet) => {
                    let mut o = lock(&observed);
                    media.on_rtp(&track_id, &packet, &mut o);
                }
                RTCMessage::RtcpPacket(_, packets) => {
                    for packet in &packets {
                        let any = packet.as_any();
                        let ssrc = any
                            .downcast_ref::<rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication>()
                            .map(|p| p.media_ssrc)
                            .or_else(|| {
                                any.downcast_ref::<rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest>()
                                    .map(|f| f.media_ssrc)
                            });
                        if let Some(ssrc) = ssrc {
                            media.keyframe_requested(ssrc);
                        }
                    }
                }
                _ => {}
            }
        }
        let deadline = media
            .pc
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        tokio::select! {
            _ = tokio::time::sleep_until(deadline.into()) => {
                let _ = media.pc.handle_timeout(Instant::now());
            }
            inbound = tcp.next(), if !network_down => {
                if let Some((from, message)) = inbound {
                    let _ = media.pc.handle_read(TaggedBytesMut {
                        now: Instant::now(),
                        transport: TransportContext {
                            local_addr: media.local_addr,
                            peer_addr: from,
                            ecn: None,
                            transport_protocol: TransportProtocol::TCP,
                        },
                        message,
                    });
                }
            }
            readable = socket.readable(), if !network_down => {
                if readable.is_ok() {
                    receive_available(&socket, gro.as_ref(), &mut buf, &mut media);
                }
            }
            _ = ticker.tick() => {
                tick_count += 1;
                let now = Instant::now();
                if send_audio {
                    media.send_frame(Which::Audio, AUDIO_PAYLOAD, now);
                }
                // Video as 25 frames per second: a frame every other tick.
                if send_video && tick_count.is_multiple_of(2) {
                    media.send_frame(Which::Video, video_bytes_per_tick * 2, now);
                }
                // A screen: five frames a second.
                if send_screen && tick_count.is_multiple_of(10) {
                    media.send_frame(Which::Screen, video_bytes_per_tick * 4, now);
                }
            }
            command = control.recv() => match command {
                Some(Control::Leave) | None => {
                    let _ = ws_tx.send(text(&ClientMessage::Leave)).await;
                    break "left".to_string();
                }
                Some(Control::Raw(message)) => {
                    let _ = ws_tx.send(message).await;
                }
                Some(Control::Mute { audio, video }) => {
                    send_audio = !audio;
                    send_video = !video;
                    let mute = ClientMessage::Mute {
                        audio_muted: audio,
                        video_muted: video,
                    };
                    let _ = ws_tx.send(text(&mute)).await;
                }
                Some(Control::StopMedia) => {
                    send_audio = false;
                    send_video = false;
                }
                Some(Control::DropNetwork) => network_down = true,
                Some(Control::Voice(level)) => media.voice_level = level,
                Some(Control::StopScreen) => send_screen = false,
                Some(Control::DropWebSocket) => {
                    let _ = ws_tx.close().await;
                    ws_alive = false;
                }
            },
            message = ws_rx.next(), if ws_alive => {
                let Some(Ok(message)) = message else {
                    break "websocket closed".to_string();
                };
                let frame = match message {
                    Message::Text(frame) => frame,
                    Message::Close(_) => break "closed by the server".to_string(),
                    _ => continue,
                };
                let Some((raw, message)) = read(&frame) else {
                    continue;
                };
                if let Some(reply) = on_message(raw, message, &mut media, &options, &observed) {
                    let _ = ws_tx.send(text(&reply)).await;
                }
            }
        }
    };
    let _ = media.pc.close();
    while let Some(out) = media.pc.poll_write() {
        let _ = socket.send_to(&out.message, out.transport.peer_addr).await;
    }
    let _ = ws_tx.close().await;
    let mut o = lock(&observed);
    o.connected = false;
    o.ended = Some(ended);
}
