// One stay in a meeting, from `join` to leaving (or an error). It ties the
// signalling socket, the peer connection, the tile grid and the stage, the
// controls, chat, the participant list and (for moderators) the moderation
// tools together; room.js creates a new Meeting for every join it asks for.
//
// A stay survives a lost connection: when the socket drops, it comes back
// with `resume` (same identity, the others notice nothing) and rebuilds the
// remote state from the new `joined`; when the media connection fails, it
// asks for `restart-media` and builds a new peer connection. Neither reloads
// the page or touches our devices.
//
// The server decides who may do what (docs/protocol.md, "Access and roles"):
// this class shows its decisions. Our role, our permission to unmute and the
// room's state change only when the server says so.

import { Call, iceServersFrom } from './call.js';
import { Chat } from './chat.js';
import { closeDialog, confirmDialog } from './dialog.js';
import { $, announce, isTyping, showScreen } from './dom.js';
import { setText } from './i18n.js';
import { closeMenu, closeMenuOf, openMenu } from './menu.js';
import { ModerationPanel, Notices, normalizeRoomState } from './moderation.js';
import { ParticipantList } from './participants.js';
import { showMediaErrors } from './prejoin.js';
import { QualityIndicator } from './quality.js';
import { Reconnector } from './reconnect.js';
import { ScreenShare, screenShareSupported } from './screenshare.js';
import { Signalling, isFatal } from './signalling.js';
import { Stage } from './stage.js';
import * as storage from './storage.js';
import { TileGrid } from './tiles.js';
import { setPressed } from './toggles.js';
import { ViewSizeReporter, shownHeight } from './viewsizes.js';

const KINDS = ['audio', 'video'];
const MESSAGE_TIMEOUT_MS = 10000;
// A `not-allowed` this soon after we announced an unmute is the server refusing that unmute.
const UNMUTE_REFUSAL_WINDOW_MS = 5000;
const NO_ORDER = Number.MAX_SAFE_INTEGER; // a raised hand whose place the server has not told yet
const PANELS = ['chat', 'participants', 'moderation'];
// Media restarts that fail this often this quickly mean the network will not carry media: stop trying.
const MAX_RESTARTS = 4;
const RESTART_WINDOW_MS = 60000;
const ATTEMPT_TIMEOUT_MS = 10000; // one reconnection attempt, from opening the socket to `joined`

const cap = (kind) => (kind === 'audio' ? 'Audio' : 'Video');

export class Meeting {
  /**
   * @param {object} opts
   * @param {string} opts.room
   * @param {string} opts.name            our display name
   * @param {import('./media.js').LocalMedia} opts.media
   * @param {{audio: string|null, video: string|null}} [opts.mediaErrors] problems met while starting devices
   * @param {string|null} [opts.jwt]      a signed link's token
   * @param {string|null} [opts.password] the room password
   * @param {string} opts.rejoinKey       this tab's random key for the room
   * @param {(end: {reason: 'left'|'error', code?: string, want: {audio: boolean, video: boolean},
   *                retryAfter?: number, byMe?: boolean}) => void} opts.onEnd
   */
  constructor({ room, name, media, mediaErrors, jwt, password, rejoinKey, onEnd }) {
    this.room = room;
    this.name = name;
    this.media = media;
    this.mediaErrors = mediaErrors || { audio: null, video: null };
    this.jwt = jwt || null;
    this.password = password || null;
    this.rejoinKey = rejoinKey;
    this.onEnd = onEnd;
    this.participants = new Map(); // id → {id, name, role, audioMuted, videoMuted, hand, hardMuted, allowed}
    this.streams = new Map(); // id → MediaStream (tracks may arrive before their participant-joined)
    this.screenStreams = new Map(); // id → their `~screen` MediaStream, likewise
    this.call = null;
    this.sig = null;
    this.you = null;
    this.resumeToken = null;
    this.joinedOnce = false;
    this.mediaConnected = false; // media flowed at least once in this stay
    this.restarts = []; // times of recent media restarts
    this.speaker = null; // the dominant speaker's id
    this.ended = false;
    this.busy = { audio: false, video: false, screen: false };
    this.attemptTimer = 0;
    this.role = 'participant';
    this.permissions = { audio: true, video: true };
    this.asked = { audio: false, video: false }; // our own open request-unmute
    this.unmuteSentAt = { audio: 0, video: 0 };
    this.roomState = normalizeRoomState(null);
    this.hand = null; // our raised hand's order, or null
    this.lobby = new Map(); // lobby id → name (moderators)
    this.unmuteRequests = new Set(); // `${id}:${kind}` (moderators)
    this.endingByMe = false;
    this.waitingReason = null;
    this.panel = null; // 'chat' | 'participants' | 'moderation' | null
    this.grid = new TileGrid($('tiles'), { onVideoChange: () => this.stage.render() });
    this.stage = new Stage({
      root: $('stage'),
      area: $('meeting-area'),
      grid: this.grid,
      describe: (id) => this.describe(id),
      others: () => [...this.participants.keys()],
    });
    this.screen = new ScreenShare();
    this.quality = new QualityIndicator($('quality'));
    this.viewSizes = new ViewSizeReporter(
      (m) => this.sig && this.sig.send(m),
      () => this.shownHeights(),
    );
    this.reconnector = new Reconnector({
      banner: $('reconnecting'),
      attempt: () => this.connect(),
      giveUp: () => this.end('error', 'reconnect-failed'),
    });
    this.micBtn = $('ctl-mic');
    this.cameraBtn = $('ctl-camera');
    this.askBtn = { audio: $('ctl-ask-audio'), video: $('ctl-ask-video') };
    this.handBtn = $('ctl-hand');
    this.screenBtn = $('ctl-screen');
    this.layoutBtn = $('ctl-layout');
    this.soundBtn = $('enable-sound');
    this.msgBox = $('meeting-msg');
    this.msgTimer = 0;
    // Every listener of this stay goes away with it, so a rejoin starts clean.
    this.listeners = new AbortController();
    this.list = new ParticipantList($('participant-list'), $('participant-count'));
    this.notices = new Notices($('notices'), () => this.micBtn.hidden ? this.askBtn.audio : this.micBtn);
  }

  start() {
    const { signal } = this.listeners;
    const on = (id, fn) => $(id).addEventListener('click', fn, { signal });
    on('ctl-mic', () => this.toggle('audio'));
    on('ctl-camera', () => this.toggle('video'));
    on('ctl-ask-audio', () => this.askToUnmute('audio'));
    on('ctl-ask-video', () => this.askToUnmute('video'));
    on('ctl-hand', () => this.toggleHand());
    on('ctl-screen', () => this.toggleScreen());
    on('stage-stop-sharing', () => this.toggleScreen());
    on('ctl-layout', () => this.toggleLayout());
    on('ctl-chat', () => this.togglePanel('chat'));
    on('ctl-participants', () => this.togglePanel('participants'));
    on('ctl-moderation', () => this.togglePanel('moderation'));
    on('ctl-leave', () => this.leave());
    on('waiting-leave', () => this.leave());
    on('enable-sound', () => this.resumeSound());
    on('reconnecting-leave', () => this.leave());
    for (const b of document.querySelectorAll('[data-close-panel]')) b.addEventListener('click', () => this.closePanel(true), { signal });
    document.addEventListener('keydown', (ev) => this.onKey(ev), { signal });
    // Tell the server at once when the tab goes away (it would notice anyway, later).
    window.addEventListener('pagehide', () => this.sig && this.sig.leave(), { signal });
    // Back online: try at once instead of waiting for the next attempt.
    window.addEventListener('online', () => this.reconnector.now(), { signal });
    this.media.onEnded = (kind) => this.deviceLost(kind);
    this.screen.onEnded = () => this.screenStopped();
    this.chat = new Chat({ send: (m) => this.sig.send(m), nameOf: (id) => this.participants.get(id)?.name ?? null, signal });
    this.moderation = new ModerationPanel({
      send: (m) => this.sig.send(m),
      onEndConference: () => {
        this.endingByMe = true;
        this.sig.send({ type: 'end-conference' });
      },
      signal,
    });

    this.soundBtn.hidden = true;
    this.screenBtn.hidden = !screenShareSupported();
    this.notices.clear();
    this.list.clear();
    this.closePanel(false);
    this.grid.addSelf(this.name, this.media.stream, !this.media.isOn('video'), !this.media.isOn('audio'));
    this.stage.setMode(storage.get('layout') === 'stage' ? 'stage' : 'grid');
    this.updateControls();
    this.refreshPeople();
    this.showMediaErrors(this.mediaErrors);
    this.connect();
  }

  /**
   * Opens a signalling connection and sends `join` (with `resume` once we
   * have been in). Messages and the close of an older socket are ignored.
   */
  connect() {
    if (this.ended) return;
    if (this.sig) this.sig.close();
    const sig = new Signalling({
      onMessage: (msg) => {
        if (sig === this.sig) this.onMessage(msg);
      },
      onClose: () => {
        if (sig === this.sig) this.onSocketClosed();
      },
    });
    this.sig = sig;
    this.announced = this.muteState();
    const join = { room: this.room, name: this.name, ...this.announced, rejoinKey: this.rejoinKey };
    if (this.jwt) join.jwt = this.jwt;
    if (this.password) join.password = this.password;
    if (this.resumeToken) join.resume = this.resumeToken;
    sig.connect(join);
    if (this.reconnector.active) {
      // A server that accepts the socket but never answers must not stall us.
      clearTimeout(this.attemptTimer);
      this.attemptTimer = setTimeout(() => {
        if (sig !== this.sig || this.you || this.waitingReason || this.ended) return;
        sig.close();
        this.reconnector.failed();
      }, ATTEMPT_TIMEOUT_MS);
    }
  }

  /** The socket closed without our asking and without a final error. */
  onSocketClosed() {
    if (this.ended) return;
    if (this.reconnector.active) {
      this.reconnector.failed();
      return;
    }
    // Before we were ever in, there is nothing to go back to.
    if (!this.joinedOnce) {
      this.end('error', 'connection-lost');
      return;
    }
    this.you = null; // until the server says who we are again
    this.quality.setLost(true);
    this.reconnector.start();
  }

  muteState() {
    return { audioMuted: !this.media.isOn('audio'), videoMuted: !this.media.isOn('video') };
  }

  /** Tells the others our camera/microphone state, once we are in (before `joined` the server refuses it). */
  sendMute() {
    const state = this.muteState();
    if (!this.you || (state.audioMuted === this.announced.audioMuted && state.videoMuted === this.announced.videoMuted)) return;
    if (this.announced.audioMuted && !state.audioMuted) this.unmuteSentAt.audio = Date.now();
    if (this.announced.videoMuted && !state.videoMuted) this.unmuteSentAt.video = Date.now();
    this.announced = state;
    this.sig.send({ type: 'mute', ...state });
  }

  onMessage(msg) {
    switch (msg.type) {
      case 'joined':
        this.onJoined(msg);
        break;
      case 'waiting':
        this.onWaiting(msg.reason);
        break;
      case 'participant-joined':
        if (this.addParticipant(msg.participant)) announce('live.joined', { name: msg.participant.name });
        this.refreshPeople();
        break;
      case 'participant-left':
        this.removeParticipant(msg.id);
        break;
      case 'mute':
        this.onMute(msg);
        break;
      case 'offer':
        if (this.call) this.call.handleOffer(msg.sdp);
        break;
      case 'answer':
        if (this.call) this.call.handleAnswer(msg.sdp);
        break;
      case 'send-video':
        if (this.call) this.call.sendVideo(msg.maxHeight);
        break;
      case 'role':
        this.onRole(msg);
        break;
      case 'permissions':
        this.applyPermissions(msg, false);
        break;
      case 'room-state':
        this.onRoomState(msg);
        break;
      case 'hand':
        this.onHand(msg);
        break;
      case 'lobby-request':
        this.onLobbyRequest(msg);
        break;
      case 'lobby-left':
        this.lobby.delete(msg.id);
        this.notices.remove(`lobby:${msg.id}`);
        break;
      case 'unmute-request':
        this.onUnmuteRequest(msg);
        break;
      case 'unmute-request-done':
        this.unmuteRequests.delete(`${msg.id}:${msg.kind}`);
        this.notices.remove(`unmute:${msg.id}:${msg.kind}`);
        this.refreshPeople();
        break;
      case 'chat':
        this.chat.receive(msg);
        break;
      case 'screen':
        this.onScreen(msg);
        break;
      case 'dominant-speaker':
        this.setSpeaker(msg.id);
        break;
      case 'error':
        this.onError(msg);
        break;
      default:
        break;
    }
  }

  onError(msg) {
    if (msg.code === 'not-allowed') this.onNotAllowed();
    else if (msg.code === 'unknown-participant') announce('live.unknownParticipant');
    else if (msg.code === 'no-free-seat') announce('live.noFreeSeat');
    else if (msg.code === 'media-failed' && this.mediaConnected && this.joinedOnce) {
      // The server gave up on our media before we could restart it; media did
      // work before, so this is a bad moment, not a blocked network: come
      // back in (as a new participant: the others were told we left).
      this.resumeToken = null;
      this.sig.close();
      this.onSocketClosed();
    } else if (isFatal(msg.code)) {
      this.end('error', msg.code, {
        retryAfter: Number.isFinite(msg.retryAfter) ? msg.retryAfter : undefined,
        byMe: msg.code === 'conference-ended' && this.endingByMe,
      });
    }
    // Other codes (bad-message, rate-limited, negotiation-failed, …) concern
    // one message only; the meeting goes on.
  }

  // ------------------------------------------------------------ entering

  onWaiting(reason) {
    // Reconnecting as a new participant can meet a lobby; that is an ordinary wait.
    if (this.reconnector.active) {
      this.reconnector.cancel();
      this.leaveConference();
    }
    const r = reason === 'lobby' ? 'lobby' : 'host';
    if (this.waitingReason === r) return;
    this.waitingReason = r;
    const screen = $('screen-waiting');
    screen.dataset.reason = r;
    setText($('waiting-title'), `waiting.${r}.title`);
    setText($('waiting-text'), `waiting.${r}.text`);
    showScreen('waiting');
    announce(`waiting.${r}.live`);
  }

  onJoined(msg) {
    const back = this.joinedOnce;
    const previousId = this.you || this.previousId;
    const resumed = back && msg.resumed === true && msg.you === previousId;
    this.you = msg.you;
    this.previousId = msg.you;
    this.resumeToken = typeof msg.resumeToken === 'string' ? msg.resumeToken : null;
    this.iceServers = iceServersFrom(msg.iceServers);
    this.joinedOnce = true;
    this.waitingReason = null;
    const role = msg.role === 'moderator' ? 'moderator' : 'participant';
    if (back && role !== this.role) announce(role === 'moderator' ? 'live.self.promoted' : 'live.self.demoted');
    this.role = role;
    this.roomState = normalizeRoomState(msg.room);
    this.moderation.update(this.roomState);
    storage.addRecentRoom(this.room);
    // The remote state comes fresh from `joined`, also after a reconnect:
    // whoever left meanwhile goes, whoever came is added, the rest updated.
    const present = new Set((msg.participants || []).map((p) => p && p.id));
    for (const id of [...this.participants.keys()]) if (!present.has(id)) this.removeParticipant(id);
    const arrived = [];
    for (const p of msg.participants || []) {
      // Our own earlier self, still in its grace period, is nobody to show.
      if (p && back && p.id === previousId) continue;
      if (this.addParticipant(p) && back) arrived.push(p.name);
    }
    for (const name of arrived) announce('live.joined', { name });
    this.lobby.clear();
    this.unmuteRequests.clear();
    this.notices.clear();
    if (!resumed) this.hand = null; // a new participant has no raised hand (yet)
    // Showing the screen again would move the focus: only when it is not up yet.
    if (document.body.dataset.view !== 'meeting') showScreen('meeting');
    if (back) this.reconnector.succeeded();
    else {
      const count = (msg.participants || []).length;
      announce(count ? 'live.youJoinedOthers' : 'live.youJoinedAlone', { count });
      if (this.role === 'moderator') announce('live.self.moderator');
    }
    if (this.role === 'moderator') {
      for (const l of msg.lobby || []) this.onLobbyRequest(l);
      for (const r of msg.unmuteRequests || []) this.onUnmuteRequest(r);
    }
    // Permissions first: a medium we may not send is switched off before the offer.
    this.applyPermissions(msg.permissions, !back);
    this.setSpeaker(typeof msg.dominantSpeaker === 'string' ? msg.dominantSpeaker : null);
    this.startMedia({ restart: resumed });
    this.viewSizes.start();
    // A resumed participant keeps the state the server last heard of, not the
    // one in this `join`: say ours again, in case it changed while we were away.
    if (resumed) this.announced = { audioMuted: null, videoMuted: null };
    // A toggle pressed while `join` was on its way is announced now.
    this.sendMute();
    // Our screen, if we were sharing, for whoever does not know it yet.
    if (back && this.screen.active) this.sig.send({ type: 'screen', active: true });
    this.updateControls();
    this.refreshPeople();
  }

  /**
   * Stream id → the height (device pixels) each remote video is shown at now:
   * every remote tile (0 when scrolled out of view), and the stage.
   */
  shownHeights() {
    const heights = {};
    const clip = $('tiles');
    for (const id of this.participants.keys()) {
      const tile = this.grid.get(id);
      heights[id] = tile ? shownHeight(tile.root, clip) : 0;
    }
    const shown = this.stage.shown;
    if (shown && shown.id !== 'self' && (shown.kind === 'screen' || shown.kind === 'camera')) {
      const stream = shown.kind === 'screen' ? `${shown.id}~screen` : shown.id;
      heights[stream] = Math.max(heights[stream] || 0, shownHeight(this.stage.root));
    }
    return heights;
  }

  /**
   * A new peer connection and a new publishing offer with our current tracks.
   * `restart`: the server still holds our old media connection; tell it to
   * drop it first (docs/protocol.md, `restart-media`).
   */
  startMedia({ restart }) {
    if (this.call) this.call.close();
    // Remote streams belong to the old connection; tiles keep their place until new ones arrive.
    this.streams.clear();
    this.screenStreams.clear();
    this.stage.dropScreenStreams();
    if (restart) this.sig.send({ type: 'restart-media' });
    const call = new Call({
      send: (m) => this.sig.send(m),
      onRemoteTrack: (id, stream, track, screen) => this.onRemoteTrack(id, stream, screen),
      onConnected: () => {
        this.mediaConnected = true;
      },
      onFailed: () => {
        if (call === this.call) this.mediaFailed();
      },
      iceServers: this.iceServers || [],
    });
    this.call = call;
    call.start(this.media.stream, { audio: this.media.audioTrack, video: this.media.videoTrack, screen: this.screen.track });
    this.quality.setLost(false);
    this.quality.watch(call.pc);
  }

  /** Our media connection failed or stayed disconnected: ask for a restart, unless that keeps failing. */
  mediaFailed() {
    if (this.ended) return;
    if (!this.you || this.reconnector.active) return; // rebuilt anyway once we are back in
    const now = Date.now();
    this.restarts = this.restarts.filter((t) => now - t < RESTART_WINDOW_MS);
    if (this.restarts.length >= MAX_RESTARTS) {
      this.end('error', 'media-failed');
      return;
    }
    this.restarts.push(now);
    announce('live.mediaRestart');
    this.startMedia({ restart: true });
  }

  // ------------------------------------------------------------ people

  /** Adds or updates a participant; true when they are new. */
  addParticipant(p) {
    if (!p || typeof p.id !== 'string' || p.id === this.you) return false;
    const known = this.participants.get(p.id);
    const participant = {
      id: p.id,
      name: String(p.name),
      role: p.role === 'moderator' ? 'moderator' : 'participant',
      audioMuted: !!p.audioMuted,
      videoMuted: !!p.videoMuted,
      hand: p.handRaised === null || p.handRaised === undefined || p.handRaised === false ? null : Number(p.handRaised) || 0,
      hardMuted: known ? known.hardMuted : { audio: false, video: false },
      allowed: known ? known.allowed : { audio: false, video: false },
      screen: !!p.screenSharing,
    };
    this.participants.set(p.id, participant);
    const tile = this.grid.get(p.id) || this.grid.add(participant);
    tile.setMuted(participant.audioMuted, participant.videoMuted);
    tile.setRole(participant.role);
    const stream = this.streams.get(p.id);
    if (stream) this.attach(p.id, stream);
    const screen = this.screenStreams.get(p.id);
    if (screen) this.stage.setScreenStream(p.id, screen);
    if (participant.screen !== this.stage.isSharing(p.id)) this.stage.setSharing(p.id, participant.screen);
    if (!known && participant.screen) announce('live.screenOn', { name: participant.name });
    return !known;
  }

  removeParticipant(id) {
    const p = this.participants.get(id);
    this.participants.delete(id);
    this.streams.delete(id);
    this.screenStreams.delete(id);
    closeMenuOf(id);
    this.grid.remove(id);
    this.stage.forget(id);
    if (this.speaker === id) this.speaker = null;
    for (const kind of KINDS) {
      this.unmuteRequests.delete(`${id}:${kind}`);
      this.notices.remove(`unmute:${id}:${kind}`);
    }
    if (p) announce('live.left', { name: p.name });
    this.refreshPeople();
  }

  onRemoteTrack(id, stream, screen) {
    if (id === this.you) return;
    if (screen) {
      this.screenStreams.set(id, stream);
      if (this.participants.has(id)) this.stage.setScreenStream(id, stream);
      return;
    }
    this.streams.set(id, stream);
    if (this.participants.has(id)) this.attach(id, stream);
  }

  /** Who `id` is, for the stage: 'self' is us. */
  describe(id) {
    if (id === 'self' || (id && id === this.you)) return { name: this.name, self: true, tile: this.grid.self };
    const p = this.participants.get(id);
    return p ? { name: p.name, self: false, tile: this.grid.get(id) } : null;
  }

  onScreen({ id, active }) {
    const p = this.participants.get(id);
    if (!p || p.screen === !!active) return;
    p.screen = !!active;
    this.stage.setSharing(id, p.screen);
    announce(p.screen ? 'live.screenOn' : 'live.screenOff', { name: p.name });
    this.refreshPeople();
  }

  setSpeaker(id) {
    this.speaker = typeof id === 'string' ? id : null;
    this.stage.setSpeaker(this.speaker === this.you ? 'self' : this.speaker);
    this.refreshPeople();
  }

  attach(id, stream) {
    const tile = this.grid.get(id);
    if (!tile) return;
    tile.setStream(stream).then((playing) => {
      // Browsers may refuse to start sound without a click (e.g. after an
      // autojoin link): offer one button that starts all of it.
      if (!playing && !this.ended) this.soundBtn.hidden = false;
    });
  }

  resumeSound() {
    this.grid.resumeAudio().then((ok) => {
      this.soundBtn.hidden = ok;
    });
  }

  onMute(msg) {
    const p = this.participants.get(msg.id);
    if (!p) return;
    const audioMuted = !!msg.audioMuted;
    const videoMuted = !!msg.videoMuted;
    if (audioMuted !== p.audioMuted) announce(audioMuted ? 'live.micOff' : 'live.micOn', { name: p.name });
    if (videoMuted !== p.videoMuted) announce(videoMuted ? 'live.cameraOff' : 'live.cameraOn', { name: p.name });
    p.audioMuted = audioMuted;
    p.videoMuted = videoMuted;
    // Sending again means no moderator's mute holds them any more.
    if (!audioMuted) p.hardMuted.audio = false;
    if (!videoMuted) p.hardMuted.video = false;
    const tile = this.grid.get(msg.id);
    if (tile) tile.setMuted(audioMuted, videoMuted);
    this.refreshPeople();
  }

  onRole({ id, role }) {
    const next = role === 'moderator' ? 'moderator' : 'participant';
    if (id === this.you) {
      if (next === this.role) return;
      this.role = next;
      announce(next === 'moderator' ? 'live.self.promoted' : 'live.self.demoted');
      if (next !== 'moderator') {
        closeMenu(false);
        if (this.panel === 'moderation') this.closePanel(true);
        this.lobby.clear();
        this.unmuteRequests.clear();
        this.notices.clear();
      }
      this.updateControls();
    } else {
      const p = this.participants.get(id);
      if (!p || p.role === next) return;
      p.role = next;
      const tile = this.grid.get(id);
      if (tile) tile.setRole(next);
      announce(next === 'moderator' ? 'live.promoted' : 'live.demoted', { name: p.name });
    }
    this.refreshPeople();
  }

  onHand({ id, raised, order }) {
    const value = raised ? (Number.isFinite(order) ? order : NO_ORDER) : null;
    if (id === this.you) {
      this.hand = value;
      this.updateControls();
    } else {
      const p = this.participants.get(id);
      if (!p) return;
      const was = p.hand !== null;
      p.hand = value;
      if (was !== !!raised) announce(raised ? 'live.handRaised' : 'live.handLowered', { name: p.name });
    }
    this.refreshPeople();
  }

  toggleHand() {
    if (!this.you || this.ended) return;
    const raise = this.hand === null;
    this.sig.send({ type: 'hand', raised: raise });
    // Shown at once; the server's `hand` gives our place in the queue.
    this.hand = raise ? NO_ORDER : null;
    announce(raise ? 'live.self.handRaised' : 'live.self.handLowered');
    this.updateControls();
    this.refreshPeople();
  }

  /** Place in the queue of raised hands (1 = first) per participant id ('self' for us). */
  handPositions() {
    const raised = [];
    if (this.hand !== null) raised.push({ id: 'self', order: this.hand });
    for (const p of this.participants.values()) if (p.hand !== null) raised.push({ id: p.id, order: p.hand });
    // A stable sort: equal orders (not yet known) keep our own, then joining order.
    raised.sort((a, b) => a.order - b.order);
    return new Map(raised.map(({ id }, index) => [id, index + 1]));
  }

  /** Brings tiles, the participant list and the counters up to date with what we know. */
  refreshPeople() {
    const positions = this.handPositions();
    const others = [];
    for (const p of this.participants.values()) {
      const tile = this.grid.get(p.id);
      const menu = (button) => this.openParticipantMenu(button, p.id);
      if (tile) {
        tile.setHand(positions.get(p.id) || null);
        tile.setMenu(menu);
        tile.setSpeaking(p.id === this.speaker);
        tile.setSharing(p.screen);
        tile.setPinned(this.stage.pinned === p.id);
      }
      others.push({ ...p, self: false, handPosition: positions.get(p.id) || null, menu });
    }
    if (this.grid.self) {
      this.grid.self.setHand(positions.get('self') || null);
      this.grid.self.setRole(this.role);
      this.grid.self.setSpeaking(!!this.you && this.speaker === this.you);
      this.grid.self.setSharing(this.screen.active);
    }
    if (this.chat) this.chat.setPeople(others.map((p) => ({ id: p.id, name: p.name })));
    const me = {
      id: this.you || 'self',
      name: this.name,
      self: true,
      role: this.role,
      audioMuted: !this.media.isOn('audio'),
      videoMuted: !this.media.isOn('video'),
      screen: this.screen.active,
      handPosition: positions.get('self') || null,
      menu: null,
    };
    // Raised hands first, in their order; then us; then everyone in joining order.
    const raised = [me, ...others].filter((e) => e.handPosition).sort((a, b) => a.handPosition - b.handPosition);
    const rest = [me, ...others].filter((e) => !e.handPosition);
    this.list.render([...raised, ...rest]);
    $('ctl-participants-count').textContent = String(others.length + 1);
  }

  // ------------------------------------------------------------ moderating others

  /** Whether to offer "allow to unmute" for `p`: a moderator's mute, a lock, or their request holds them. */
  needsAllow(p, kind) {
    if (this.unmuteRequests.has(`${p.id}:${kind}`) || p.hardMuted[kind]) return true;
    const muted = kind === 'audio' ? p.audioMuted : p.videoMuted;
    return this.roomState.unmuteLocked[kind] && p.role !== 'moderator' && muted && !p.allowed[kind];
  }

  openParticipantMenu(button, id) {
    const p = this.participants.get(id);
    if (!p) return;
    const pinned = this.stage.pinned === id;
    const items = [
      { key: pinned ? 'menu.unpin' : 'menu.pin', action: pinned ? 'unpin' : 'pin', onSelect: () => this.pin(pinned ? null : id) },
      { key: 'menu.message', action: 'message', onSelect: () => this.writeTo(id) },
    ];
    if (this.role !== 'moderator') {
      openMenu(button, { label: 'menu.for', params: { name: p.name } }, items, id);
      return;
    }
    for (const kind of KINDS) {
      if (!p.hardMuted[kind]) {
        items.push({ key: `menu.mute${cap(kind)}`, action: `mute-${kind}`, onSelect: () => this.muteParticipant(id, kind) });
      }
    }
    for (const kind of KINDS) {
      if (this.needsAllow(p, kind)) {
        items.push({ key: `menu.allow${cap(kind)}`, action: `allow-${kind}`, onSelect: () => this.allowUnmute(id, kind) });
      }
    }
    if (p.role !== 'moderator') items.push({ key: 'menu.promote', action: 'promote', onSelect: () => this.promote(id) });
    items.push({ key: 'menu.remove', action: 'remove', danger: true, onSelect: () => this.removeOther(id, false) });
    items.push({ key: 'menu.removeBar', action: 'remove-bar', danger: true, onSelect: () => this.removeOther(id, true) });
    openMenu(button, { label: 'menu.for', params: { name: p.name } }, items, id);
  }

  /** Shows `id` on our stage (null: nobody pinned); only we see the difference. */
  pin(id) {
    const p = id ? this.participants.get(id) : null;
    this.stage.pin(p ? id : null);
    announce(p ? 'live.pinned' : 'live.unpinned', { name: p ? p.name : '' });
    this.refreshPeople();
  }

  /** Opens the chat with a private message to `id` under way. */
  writeTo(id) {
    if (this.panel !== 'chat') this.togglePanel('chat');
    this.chat.writeTo(id);
    this.chat.focusInput();
  }

  muteParticipant(id, kind) {
    const p = this.participants.get(id);
    if (!p) return;
    this.sig.send({ type: 'mute-participant', id, kind });
    p.hardMuted[kind] = true;
    p.allowed[kind] = false;
    announce(`live.mod.muted${cap(kind)}`, { name: p.name });
    this.refreshPeople();
  }

  allowUnmute(id, kind) {
    this.sig.send({ type: 'allow-unmute', id, kind });
    const p = this.participants.get(id);
    const name = p ? p.name : this.name;
    if (p) {
      p.hardMuted[kind] = false;
      p.allowed[kind] = true;
    }
    announce(`live.mod.allowed${cap(kind)}`, { name });
    this.refreshPeople();
  }

  promote(id) {
    this.sig.send({ type: 'promote', id });
  }

  async removeOther(id, bar) {
    const p = this.participants.get(id);
    if (!p) return;
    const yes = await confirmDialog({
      title: bar ? 'menu.removeBarConfirm.title' : 'menu.removeConfirm.title',
      text: bar ? 'menu.removeBarConfirm.text' : 'menu.removeConfirm.text',
      confirm: bar ? 'menu.removeBar' : 'menu.remove',
      params: { name: p.name },
    });
    if (!yes || this.ended || !this.participants.has(id)) return;
    this.sig.send({ type: 'remove', id, bar });
    announce(bar ? 'live.mod.removedBarred' : 'live.mod.removed', { name: p.name });
  }

  onLobbyRequest({ id, name }) {
    if (typeof id !== 'string' || this.lobby.has(id)) return;
    const who = String(name);
    this.lobby.set(id, who);
    this.notices.add(`lobby:${id}`, {
      text: 'notice.lobby',
      params: { name: who },
      iconName: 'user-plus',
      actions: [
        { key: 'notice.admit', aria: 'notice.admitName', action: 'admit', primary: true, onClick: () => this.sig.send({ type: 'admit', id }) },
        { key: 'notice.deny', aria: 'notice.denyName', action: 'deny', onClick: () => this.sig.send({ type: 'deny', id }) },
      ],
    });
    announce('live.lobbyRequest', { name: who });
  }

  onUnmuteRequest({ id, kind }) {
    if (typeof id !== 'string' || !KINDS.includes(kind)) return;
    const key = `${id}:${kind}`;
    if (this.unmuteRequests.has(key)) return;
    this.unmuteRequests.add(key);
    const p = this.participants.get(id);
    const name = p ? p.name : id === this.you ? this.name : '?';
    this.notices.add(`unmute:${key}`, {
      text: `notice.unmute${cap(kind)}`,
      params: { name },
      iconName: kind === 'audio' ? 'mic' : 'video',
      actions: [
        { key: 'notice.allow', aria: `notice.allow${cap(kind)}Name`, action: 'allow', primary: true, onClick: () => this.allowUnmute(id, kind) },
        { key: 'notice.dismiss', aria: 'notice.dismissName', action: 'dismiss', onClick: () => this.notices.remove(`unmute:${key}`) },
      ],
    });
    announce(`live.unmuteRequest${cap(kind)}`, { name });
    this.refreshPeople();
  }

  onRoomState(msg) {
    const next = normalizeRoomState(msg);
    const prev = this.roomState;
    this.roomState = next;
    const say = (was, now, on, off) => {
      if (was !== now) announce(now ? on : off);
    };
    say(prev.locked, next.locked, 'live.room.locked', 'live.room.unlocked');
    say(prev.lobby, next.lobby, 'live.room.lobbyOn', 'live.room.lobbyOff');
    say(prev.passwordSet, next.passwordSet, 'live.room.passwordSet', 'live.room.passwordCleared');
    for (const kind of KINDS) {
      say(prev.unmuteLocked[kind], next.unmuteLocked[kind], `live.room.unmuteLocked${cap(kind)}`, `live.room.unmuteUnlocked${cap(kind)}`);
      // A new lock takes back every earlier "allow".
      if (!prev.unmuteLocked[kind] && next.unmuteLocked[kind]) for (const p of this.participants.values()) p.allowed[kind] = false;
    }
    this.moderation.update(next);
    this.refreshPeople();
  }

  // ------------------------------------------------------------ our own media and permissions

  /**
   * The server's word on whether we may unmute. Losing it switches the
   * device off (the server has stopped forwarding it anyway).
   */
  applyPermissions(perms, initial) {
    if (!perms || typeof perms !== 'object') return;
    for (const kind of KINDS) {
      if (typeof perms[kind] !== 'boolean') continue;
      const before = this.permissions[kind];
      this.permissions[kind] = perms[kind];
      if (!perms[kind]) {
        const wasOn = this.media.isOn(kind);
        if (wasOn) this.switchOff(kind);
        if (before || initial) announce(wasOn ? `live.self.mutedBy${cap(kind)}` : `live.self.locked${cap(kind)}`);
      } else if (!before) {
        this.asked[kind] = false;
        announce(`live.self.allowed${cap(kind)}`);
      }
    }
    this.afterLocalChange();
  }

  /** Stops sending `kind` and its device, without touching the remembered choice. */
  switchOff(kind) {
    if (this.call) this.call.replaceTrack(kind, null);
    this.media.set(kind, false);
  }

  /** The server refused something: an unmute we just announced, or a moderator's action we may no longer take. */
  onNotAllowed() {
    const now = Date.now();
    const refused = KINDS.filter((k) => now - this.unmuteSentAt[k] < UNMUTE_REFUSAL_WINDOW_MS && this.media.isOn(k));
    if (!refused.length) {
      announce('live.notAllowed');
      return;
    }
    for (const kind of refused) {
      this.permissions[kind] = false;
      this.switchOff(kind);
      announce(`live.self.refused${cap(kind)}`);
    }
    this.afterLocalChange();
  }

  askToUnmute(kind) {
    if (!this.you || this.ended || this.permissions[kind]) return;
    if (this.asked[kind]) {
      announce(`live.self.asked${cap(kind)}`);
      return;
    }
    this.sig.send({ type: 'request-unmute', kind });
    this.asked[kind] = true;
    announce(`live.self.asked${cap(kind)}`);
    this.updateControls();
  }

  async toggle(kind) {
    if (this.busy[kind] || this.ended) return;
    const on = !this.media.isOn(kind);
    if (on && !this.permissions[kind]) {
      announce(`live.self.needPermission${cap(kind)}`);
      return;
    }
    this.busy[kind] = true;
    let error = null;
    if (on) {
      error = await this.media.set(kind, true);
      // The permission may have gone while the device was starting.
      if (!error && !this.permissions[kind]) this.media.set(kind, false);
      else if (!error && this.call) await this.call.replaceTrack(kind, this.media.tracks[kind]);
    } else {
      // Stop sending first, then stop the device (its light goes out).
      if (this.call) await this.call.replaceTrack(kind, null);
      this.media.set(kind, false);
    }
    this.busy[kind] = false;
    if (this.ended) {
      this.media.stopAll();
      return;
    }
    storage.set(kind === 'video' ? 'cameraOn' : 'micOn', this.media.isOn(kind));
    this.showMediaErrors({ audio: null, video: null, [kind]: error });
    this.afterLocalChange();
    const state = this.media.isOn(kind) ? 'On' : 'Off';
    announce(kind === 'audio' ? `live.self.mic${state}` : `live.self.camera${state}`);
  }

  async toggleScreen() {
    if (this.ended || !this.you || this.busy.screen) return;
    if (this.screen.active) {
      this.screen.stop();
      this.screenStopped();
      return;
    }
    this.busy.screen = true;
    const error = await this.screen.start();
    this.busy.screen = false;
    if (this.ended) {
      this.screen.stop();
      return;
    }
    if (error) {
      // Cancelling the browser's picker is a choice, not a problem: no message for that.
      if (error !== 'denied') this.showMediaErrors({ audio: null, video: null, screen: error });
      return;
    }
    if (this.call) await this.call.replaceTrack('screen', this.screen.track);
    this.sig.send({ type: 'screen', active: true });
    this.stage.setSharing('self', true);
    announce('live.self.screenOn');
    this.updateControls();
    this.refreshPeople();
  }

  /** Our sharing ended: from our button, the stage's, or the browser's own control. */
  screenStopped() {
    if (this.call) this.call.replaceTrack('screen', null);
    if (this.sig) this.sig.send({ type: 'screen', active: false });
    this.stage.setSharing('self', false);
    announce('live.self.screenOff');
    this.updateControls();
    this.refreshPeople();
  }

  /** Grid or stage view: remembered on this device, like the other choices. */
  toggleLayout() {
    const next = this.stage.mode === 'stage' ? 'grid' : 'stage';
    this.stage.setMode(next);
    storage.set('layout', next);
    announce(next === 'stage' ? 'live.layoutStage' : 'live.layoutGrid');
    this.updateControls();
  }

  /** A device stopped by itself (unplugged, or taken away by the system). */
  deviceLost(kind) {
    if (this.call) this.call.replaceTrack(kind, null);
    this.showMediaErrors({ audio: null, video: null, [kind]: 'lost' });
    this.afterLocalChange();
  }

  afterLocalChange() {
    this.updateControls();
    if (this.grid.self) {
      this.grid.self.setMuted(!this.media.isOn('audio'), !this.media.isOn('video'));
      this.grid.self.reload();
    }
    this.sendMute();
    this.refreshPeople();
  }

  updateControls() {
    for (const kind of KINDS) {
      const button = kind === 'audio' ? this.micBtn : this.cameraBtn;
      const ask = this.askBtn[kind];
      const isOn = this.media.isOn(kind);
      setPressed(button, isOn);
      // Without the permission the toggle gives way to "ask to speak".
      const locked = !this.permissions[kind] && !isOn;
      const focusFollows = document.activeElement === (locked ? button : ask);
      button.hidden = locked;
      ask.hidden = !locked;
      ask.setAttribute('aria-disabled', this.asked[kind] ? 'true' : 'false');
      setText(ask.querySelector('.ctl-label'), `control.${this.asked[kind] ? 'asked' : 'ask'}${cap(kind)}`);
      if (focusFollows) (locked ? ask : button).focus();
    }
    setPressed(this.handBtn, this.hand !== null);
    setPressed(this.screenBtn, this.screen.active);
    setText(this.screenBtn.querySelector('.ctl-label'), this.screen.active ? 'control.screenStop' : 'control.screen');
    setPressed(this.layoutBtn, this.stage.mode === 'stage');
    const modBtn = $('ctl-moderation');
    if (this.role !== 'moderator' && document.activeElement === modBtn) this.micBtn.focus();
    modBtn.hidden = this.role !== 'moderator';
  }

  showMediaErrors(errors) {
    clearTimeout(this.msgTimer);
    showMediaErrors(this.msgBox, errors, false);
    if (!this.msgBox.hidden) {
      this.msgTimer = setTimeout(() => {
        this.msgBox.hidden = true;
      }, MESSAGE_TIMEOUT_MS);
    }
  }

  // ------------------------------------------------------------ panels and keys

  togglePanel(name) {
    if (this.panel === name) {
      this.closePanel(true);
      return;
    }
    this.closePanel(false);
    if (name === 'moderation' && this.role !== 'moderator') return;
    this.panel = name;
    $(`panel-${name}`).hidden = false;
    $(`ctl-${name}`).setAttribute('aria-expanded', 'true');
    $('meeting-area').dataset.panel = name;
    if (name === 'chat') {
      this.chat.setOpen(true);
      // Opened to write: straight into the message field.
      this.chat.focusInput();
    } else $(`panel-${name}-title`).focus();
  }

  /** Closes the open side panel; `returnFocus` puts focus back on its button if it was inside. */
  closePanel(returnFocus) {
    if (this.chat) this.chat.setOpen(false);
    for (const name of PANELS) {
      const panel = $(`panel-${name}`);
      const hadFocus = panel.contains(document.activeElement);
      panel.hidden = true;
      $(`ctl-${name}`).setAttribute('aria-expanded', 'false');
      if (hadFocus && returnFocus && this.panel === name) {
        const button = $(`ctl-${name}`);
        (button.hidden ? this.micBtn : button).focus();
      }
    }
    delete $('meeting-area').dataset.panel;
    this.panel = null;
  }

  onKey(ev) {
    if (ev.key === 'Escape' && this.panel && $(`panel-${this.panel}`).contains(ev.target)) {
      ev.preventDefault();
      this.closePanel(true);
      return;
    }
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.repeat || isTyping(ev.target)) return;
    if (ev.target instanceof Element && ev.target.closest('dialog, [role="menu"]')) return;
    if (!this.joinedOnce) return; // waiting: nothing to toggle yet
    const key = ev.key.toLowerCase();
    if (key === 'm') {
      ev.preventDefault();
      this.toggle('audio');
    } else if (key === 'v') {
      ev.preventDefault();
      this.toggle('video');
    } else if (key === 'h') {
      ev.preventDefault();
      this.toggleHand();
    }
  }

  // ------------------------------------------------------------ leaving

  leave() {
    if (this.sig) this.sig.leave();
    this.end('left');
  }

  /**
   * Out of the conference but still in this stay (a reconnect that ended in
   * a lobby): no media, nobody shown but us, until `joined` again.
   */
  leaveConference() {
    if (this.call) this.call.close();
    this.call = null;
    this.quality.stop();
    this.viewSizes.stop();
    for (const id of [...this.participants.keys()]) this.removeParticipant(id);
    this.lobby.clear();
    this.unmuteRequests.clear();
    this.notices.clear();
    this.closePanel(false);
  }

  end(reason, code, detail = {}) {
    if (this.ended) return;
    this.ended = true;
    const want = { audio: this.media.isOn('audio'), video: this.media.isOn('video') };
    this.listeners.abort();
    this.reconnector.cancel();
    clearTimeout(this.attemptTimer);
    this.quality.stop();
    this.viewSizes.stop();
    this.screen.stop();
    this.stage.setMode('grid');
    for (const id of [...this.participants.keys()]) this.stage.forget(id);
    this.stage.setSharing('self', false);
    closeMenu(false);
    closeDialog();
    this.closePanel(false);
    this.notices.clear();
    this.list.clear();
    this.chat.clear();
    clearTimeout(this.msgTimer);
    this.msgBox.hidden = true;
    this.soundBtn.hidden = true;
    if (this.sig) this.sig.close();
    if (this.call) this.call.close();
    this.grid.clear();
    // Out of the meeting, the camera and microphone go off.
    this.media.stopAll();
    this.onEnd({ reason, code, want, ...detail });
  }
}
