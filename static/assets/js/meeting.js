// One stay in a meeting, from `join` to leaving (or an error). It ties the
// signalling socket, the peer connection, the tile grid and the controls
// together; room.js creates a new Meeting for every (re)join.

import { Call } from './call.js';
import { $, announce, isTyping } from './dom.js';
import { showMediaErrors } from './prejoin.js';
import { FATAL_CODES, Signalling } from './signalling.js';
import * as storage from './storage.js';
import { TileGrid } from './tiles.js';
import { setPressed } from './toggles.js';

const MESSAGE_TIMEOUT_MS = 10000;

export class Meeting {
  /**
   * @param {object} opts
   * @param {string} opts.room
   * @param {string} opts.name            our display name
   * @param {import('./media.js').LocalMedia} opts.media
   * @param {{audio: string|null, video: string|null}} [opts.mediaErrors] problems met while starting devices
   * @param {(end: {reason: 'left'|'error', code?: string, want: {audio: boolean, video: boolean}}) => void} opts.onEnd
   */
  constructor({ room, name, media, mediaErrors, onEnd }) {
    this.room = room;
    this.name = name;
    this.media = media;
    this.mediaErrors = mediaErrors || { audio: null, video: null };
    this.onEnd = onEnd;
    this.participants = new Map(); // id → {id, name, audioMuted, videoMuted}
    this.streams = new Map(); // id → MediaStream (tracks may arrive before their participant-joined)
    this.call = null;
    this.you = null;
    this.ended = false;
    this.busy = { audio: false, video: false };
    this.grid = new TileGrid($('tiles'));
    this.micBtn = $('ctl-mic');
    this.cameraBtn = $('ctl-camera');
    this.soundBtn = $('enable-sound');
    this.msgBox = $('meeting-msg');
    this.msgTimer = 0;
    // Every listener of this stay goes away with it, so a rejoin starts clean.
    this.listeners = new AbortController();
  }

  start() {
    const { signal } = this.listeners;
    this.micBtn.addEventListener('click', () => this.toggle('audio'), { signal });
    this.cameraBtn.addEventListener('click', () => this.toggle('video'), { signal });
    $('ctl-leave').addEventListener('click', () => this.leave(), { signal });
    this.soundBtn.addEventListener('click', () => this.resumeSound(), { signal });
    document.addEventListener('keydown', (ev) => this.onKey(ev), { signal });
    // Tell the server at once when the tab goes away (it would notice anyway, later).
    window.addEventListener('pagehide', () => this.sig.leave(), { signal });
    this.media.onEnded = (kind) => this.deviceLost(kind);

    this.soundBtn.hidden = true;
    this.grid.addSelf(this.name, this.media.stream, !this.media.isOn('video'), !this.media.isOn('audio'));
    this.updateControls();
    this.showMediaErrors(this.mediaErrors);

    this.sig = new Signalling({
      onMessage: (msg) => this.onMessage(msg),
      onClose: () => this.end('error', 'connection-lost'),
    });
    this.announced = this.muteState();
    this.sig.connect({ room: this.room, name: this.name, ...this.announced });
  }

  muteState() {
    return { audioMuted: !this.media.isOn('audio'), videoMuted: !this.media.isOn('video') };
  }

  /** Tells the others our camera/microphone state, once we are in (before `joined` the server refuses it). */
  sendMute() {
    const state = this.muteState();
    if (!this.you || (state.audioMuted === this.announced.audioMuted && state.videoMuted === this.announced.videoMuted)) return;
    this.announced = state;
    this.sig.send({ type: 'mute', ...state });
  }

  onMessage(msg) {
    switch (msg.type) {
      case 'joined':
        this.onJoined(msg);
        break;
      case 'participant-joined':
        this.addParticipant(msg.participant);
        announce('live.joined', { name: msg.participant.name });
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
      case 'error':
        // Non-fatal codes (bad-message, rate-limited, negotiation-failed, …)
        // concern one message only; the meeting goes on.
        if (FATAL_CODES.has(msg.code)) this.end('error', msg.code);
        break;
      default:
        break;
    }
  }

  onJoined(msg) {
    this.you = msg.you;
    storage.addRecentRoom(this.room);
    for (const p of msg.participants || []) this.addParticipant(p);
    announce(msg.participants && msg.participants.length ? 'live.youJoinedOthers' : 'live.youJoinedAlone', {
      count: (msg.participants || []).length,
    });
    this.call = new Call({
      send: (m) => this.sig.send(m),
      onRemoteTrack: (id, stream) => this.onRemoteTrack(id, stream),
      onFailed: () => this.end('error', 'media-failed'),
    });
    this.call.start(this.media.stream, this.media.audioTrack, this.media.videoTrack);
    // A toggle pressed while `join` was on its way is announced now.
    this.sendMute();
  }

  addParticipant(p) {
    if (!p || typeof p.id !== 'string' || p.id === this.you) return;
    const participant = { id: p.id, name: String(p.name), audioMuted: !!p.audioMuted, videoMuted: !!p.videoMuted };
    this.participants.set(p.id, participant);
    this.grid.add(participant);
    const stream = this.streams.get(p.id);
    if (stream) this.attach(p.id, stream);
  }

  removeParticipant(id) {
    const p = this.participants.get(id);
    this.participants.delete(id);
    this.streams.delete(id);
    this.grid.remove(id);
    if (p) announce('live.left', { name: p.name });
  }

  onRemoteTrack(id, stream) {
    if (id === this.you) return;
    this.streams.set(id, stream);
    if (this.participants.has(id)) this.attach(id, stream);
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
    const tile = this.grid.get(msg.id);
    if (tile) tile.setMuted(audioMuted, videoMuted);
  }

  async toggle(kind) {
    if (this.busy[kind] || this.ended) return;
    this.busy[kind] = true;
    const on = !this.media.isOn(kind);
    let error = null;
    if (on) {
      error = await this.media.set(kind, true);
      if (!error && this.call) await this.call.replaceTrack(kind, this.media.tracks[kind]);
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
  }

  updateControls() {
    setPressed(this.micBtn, this.media.isOn('audio'));
    setPressed(this.cameraBtn, this.media.isOn('video'));
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

  onKey(ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.repeat || isTyping(ev.target)) return;
    const key = ev.key.toLowerCase();
    if (key === 'm') {
      ev.preventDefault();
      this.toggle('audio');
    } else if (key === 'v') {
      ev.preventDefault();
      this.toggle('video');
    }
  }

  leave() {
    if (this.sig) this.sig.leave();
    this.end('left');
  }

  end(reason, code) {
    if (this.ended) return;
    this.ended = true;
    const want = { audio: this.media.isOn('audio'), video: this.media.isOn('video') };
    this.listeners.abort();
    clearTimeout(this.msgTimer);
    this.msgBox.hidden = true;
    this.soundBtn.hidden = true;
    if (this.sig) this.sig.close();
    if (this.call) this.call.close();
    this.grid.clear();
    // Out of the meeting, the camera and microphone go off.
    this.media.stopAll();
    this.onEnd({ reason, code, want });
  }
}
