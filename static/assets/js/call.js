// The one RTCPeerConnection to the server's SFU (docs/protocol.md).
//
// The client offers exactly once, right after `joined` (or after
// `restart-media`), with three sendonly transceivers: audio, camera video and
// screen video. After that only the server offers, to add or remove the
// others' tracks, and we answer. All signalling steps go through one promise
// queue so they run strictly one at a time, in arrival order.
//
// A Call never repairs itself: when its connection fails (or stays
// disconnected too long) it says so once through onFailed, and meeting.js
// replaces it with a new Call.

// Chromium reports "disconnected" after a few seconds without consent
// responses; the server gives up on us 6 s after its last check. Waiting this
// long lets a short hiccup heal by itself, and still leaves time to ask for a
// restart before the server declares the media dead.
const DISCONNECTED_GRACE_MS = 1500;

// The camera goes out as three simulcast layers, smallest first (the server
// tells them apart by rid and sends each receiver the one that fits its
// downlink and the size of its tile). From a 960×540 camera: 135, 270 and
// 540 lines. Chromium sends all three only from 960×540 up (media.js asks
// for that much).
const CAMERA_LAYERS = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000, maxFramerate: 15 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 450_000 },
  { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1_200_000 },
];
// A shared screen is one stream: sharp text matters more than motion.
const SCREEN_ENCODING = [{ maxBitrate: 2_000_000, maxFramerate: 10 }];

/**
 * Which camera layers to encode when the server says no receiver takes a
 * picture taller than `maxHeight` (`send-video`, docs/protocol.md): every
 * layer up to the first at least that tall; none for 0; all for null.
 * `trackHeight` is the camera's height in lines (a layer is that divided by
 * its scaleResolutionDownBy); returns one flag per encoding.
 */
export function cameraLayersToSend(encodings, trackHeight, maxHeight) {
  if (maxHeight === null || maxHeight === undefined) return encodings.map(() => true);
  if (maxHeight === 0) return encodings.map(() => false);
  const heights = encodings.map((e) => Math.round((trackHeight || 540) / (e.scaleResolutionDownBy || 1)));
  const tallEnough = heights.filter((h) => h >= maxHeight);
  const cut = tallEnough.length ? Math.min(...tallEnough) : Infinity;
  return heights.map((h) => h <= cut);
}

/** The participant id a remote stream belongs to, and whether it is their screen (`<id>~screen`). */
export function streamOwner(streamId) {
  const screen = streamId.endsWith('~screen');
  return { id: screen ? streamId.slice(0, -'~screen'.length) : streamId, screen };
}

/**
 * The TURN servers of a `joined` message, as RTCPeerConnection takes them;
 * anything malformed is left out (a wrong entry would make the constructor throw).
 */
export function iceServersFrom(list) {
  if (!Array.isArray(list)) return [];
  return list
    .filter(
      (s) =>
        s &&
        Array.isArray(s.urls) &&
        s.urls.length > 0 &&
        s.urls.every((u) => typeof u === 'string' && /^turns?:/.test(u)) &&
        typeof s.username === 'string' &&
        typeof s.credential === 'string',
    )
    .map((s) => ({ urls: [...s.urls], username: s.username, credential: s.credential }));
}

export class Call {
  /**
   * @param {object} opts
   * @param {(msg: object) => void} opts.send            sends a signalling message
   * @param {(id: string, stream: MediaStream, track: MediaStreamTrack, screen: boolean) => void} opts.onRemoteTrack
   * @param {() => void} opts.onConnected                media flows (every time the connection becomes connected)
   * @param {() => void} opts.onFailed                   media connection failed: replace this Call
   * @param {RTCIceServer[]} [opts.iceServers]           this server's own TURN, from `joined`
   */
  constructor({ send, onRemoteTrack, onConnected, onFailed, iceServers = [] }) {
    this.send = send;
    this.onFailed = onFailed;
    this.queue = Promise.resolve();
    this.closed = false;
    this.failed = false;
    this.answered = false;
    this.disconnectTimer = 0;
    // Only the server's own TURN (for networks that let no UDP out): Zaal
    // never uses a third-party STUN/TURN server, and is ICE-lite on its own
    // UDP and TCP ports.
    this.pc = new RTCPeerConnection({ iceServers, bundlePolicy: 'max-bundle' });

    this.pc.addEventListener('track', (ev) => {
      // The server names each stream after the publishing participant's id.
      const stream = ev.streams[0];
      if (!stream) return;
      const owner = streamOwner(stream.id);
      onRemoteTrack(owner.id, stream, ev.track, owner.screen);
    });

    // Candidates found before our offer has gone out wait here, so the
    // server never sees a candidate for a description it does not have yet.
    this.pendingCandidates = [];
    this.offerSent = false;
    this.pc.addEventListener('icecandidate', (ev) => {
      // Trickling is optional (the server learns our address from its
      // connectivity checks) but allowed; an empty string ends the list.
      const c = ev.candidate;
      const msg = {
        type: 'candidate',
        candidate: c ? c.candidate : '',
        sdpMid: c && c.sdpMid !== null ? c.sdpMid : '0',
        sdpMLineIndex: c && c.sdpMLineIndex !== null ? c.sdpMLineIndex : 0,
      };
      if (this.offerSent) this.send(msg);
      else this.pendingCandidates.push(msg);
    });

    this.pc.addEventListener('connectionstatechange', () => {
      if (this.closed) return;
      const state = this.pc.connectionState;
      clearTimeout(this.disconnectTimer);
      if (state === 'connected') onConnected();
      else if (state === 'failed') this.fail();
      else if (state === 'disconnected') this.disconnectTimer = setTimeout(() => this.fail(), DISCONNECTED_GRACE_MS);
    });
  }

  fail() {
    if (this.closed || this.failed) return;
    this.failed = true;
    this.onFailed();
  }

  enqueue(step) {
    this.queue = this.queue.then(() => (this.closed ? undefined : step())).catch(() => this.fail());
    return this.queue;
  }

  /**
   * Adds the three transceivers and sends the one publishing offer. A missing
   * track (device or screen off) is added as its kind, so it can be switched
   * on later with replaceTrack() and no renegotiation.
   */
  start(localStream, tracks) {
    const init = { direction: 'sendonly', streams: [localStream] };
    this.audio = this.pc.addTransceiver(tracks.audio || 'audio', init);
    this.video = this.pc.addTransceiver(tracks.video || 'video', { ...init, sendEncodings: CAMERA_LAYERS });
    // The screen gets a stream of its own; the server renames it `<our id>~screen` anyway.
    this.screen = this.pc.addTransceiver(tracks.screen || 'video', {
      direction: 'sendonly',
      streams: [new MediaStream()],
      sendEncodings: SCREEN_ENCODING,
    });
    return this.enqueue(async () => {
      const offer = await this.pc.createOffer();
      await this.pc.setLocalDescription(offer);
      this.send({ type: 'offer', sdp: this.pc.localDescription.sdp });
      this.offerSent = true;
      this.pendingCandidates.splice(0).forEach((msg) => this.send(msg));
    });
  }

  handleAnswer(sdp) {
    return this.enqueue(async () => {
      // An answer meant for a connection we have replaced finds us in another state: not ours.
      if (this.pc.signalingState !== 'have-local-offer') return;
      await this.pc.setRemoteDescription({ type: 'answer', sdp });
      this.answered = true;
    });
  }

  handleOffer(sdp) {
    return this.enqueue(async () => {
      // The server offers only once it has answered us: an offer that finds
      // our own still unanswered was meant for the connection this one replaced.
      if (this.pc.signalingState === 'have-local-offer') return;
      await this.pc.setRemoteDescription({ type: 'offer', sdp });
      const answer = await this.pc.createAnswer();
      await this.pc.setLocalDescription(answer);
      this.send({ type: 'answer', sdp: this.pc.localDescription.sdp });
    });
  }

  /** Switches a published track ('audio', 'video' or 'screen'; `null` sends nothing) without renegotiating. */
  replaceTrack(kind, track) {
    const transceiver = this[kind];
    if (!transceiver || this.closed) return Promise.resolve();
    const replaced = transceiver.sender.replaceTrack(track).catch(() => {});
    // Another camera may have another height: the layers to send follow it.
    if (kind === 'video') replaced.then(() => this.enqueue(() => this.applyCameraLayers()));
    return replaced;
  }

  /**
   * Encodes only the camera layers some receiver takes, as the server tells
   * (`send-video`): a camera nobody watches costs no uplink at all.
   */
  sendVideo(maxHeight) {
    return this.enqueue(() => {
      // Before our answer, a `send-video` was meant for the connection this one replaced (the
      // server's demands for this one come once its media flows, after the answer).
      if (!this.answered) return undefined;
      this.cameraMaxHeight = maxHeight;
      return this.applyCameraLayers();
    });
  }

  async applyCameraLayers() {
    const sender = this.video && this.video.sender;
    if (!sender) return;
    const params = sender.getParameters();
    if (!params.encodings || params.encodings.length === 0) return;
    const height = sender.track ? sender.track.getSettings().height : 0;
    const active = cameraLayersToSend(params.encodings, height, this.cameraMaxHeight);
    if (params.encodings.every((e, i) => e.active === active[i])) return;
    params.encodings.forEach((e, i) => {
      e.active = active[i];
    });
    // A browser that refuses leaves every layer on: more uplink, never a broken call.
    await sender.setParameters(params).catch(() => {});
  }

  close() {
    this.closed = true;
    clearTimeout(this.disconnectTimer);
    this.pc.close();
  }
}
