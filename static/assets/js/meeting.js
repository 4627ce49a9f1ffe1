// One stay in a meeting, from `join` to leaving (or an error). It ties the
// signalling socket, the peer connection, the tile grid, the controls, the
// participant list and (for moderators) the moderation tools together;
// room.js creates a new Meeting for every (re)join.
//
// The server decides who may do what (docs/protocol.md, "Access and roles"):
// this class shows its decisions. Our role, our permission to unmute and the
// room's state change only when the server says so.

import { Call } from './call.js';
import { closeDialog, confirmDialog } from './dialog.js';
import { $, announce, isTyping, showScreen } from './dom.js';
import { setText } from './i18n.js';
import { closeMenu, closeMenuOf, openMenu } from './menu.js';
import { ModerationPanel, Notices, normalizeRoomState } from './moderation.js';
import { ParticipantList } from './participants.js';
import { showMediaErrors } from './prejoin.js';
import { Signalling, isFatal } from './signalling.js';
import * as storage from './storage.js';
import { TileGrid } from './tiles.js';
import { setPressed } from './toggles.js';

const KINDS = ['audio', 'video'];
const MESSAGE_TIMEOUT_MS = 10000;
// A `not-allowed` this soon after we announced an unmute is the server refusing that unmute.
const UNMUTE_REFUSAL_WINDOW_MS = 5000;
const NO_ORDER = Number.MAX_SAFE_INTEGER; // a raised hand whose place the server has not told yet

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
    this.call = null;
    this.you = null;
    this.ended = false;
    this.busy = { audio: false, video: false };
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
    this.panel = null; // 'participants' | 'moderation' | null
    this.grid = new TileGrid($('tiles'));
    this.micBtn = $('ctl-mic');
    this.cameraBtn = $('ctl-camera');
    this.askBtn = { audio: $('ctl-ask-audio'), video: $('ctl-ask-video') };
    this.handBtn = $('ctl-hand');
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
    on('ctl-participants', () => this.togglePanel('participants'));
    on('ctl-moderation', () => this.togglePanel('moderation'));
    on('ctl-leave', () => this.leave());
    on('waiting-leave', () => this.leave());
    on('enable-sound', () => this.resumeSound());
    for (const b of document.querySelectorAll('[data-close-panel]')) b.addEventListener('click', () => this.closePanel(true), { signal });
    document.addEventListener('keydown', (ev) => this.onKey(ev), { signal });
    // Tell the server at once when the tab goes away (it would notice anyway, later).
    window.addEventListener('pagehide', () => this.sig.leave(), { signal });
    this.media.onEnded = (kind) => this.deviceLost(kind);
    this.moderation = new ModerationPanel({
      send: (m) => this.sig.send(m),
      onEndConference: () => {
        this.endingByMe = true;
        this.sig.send({ type: 'end-conference' });
      },
      signal,
    });

    this.soundBtn.hidden = true;
    this.notices.clear();
    this.list.clear();
    this.closePanel(false);
    this.grid.addSelf(this.name, this.media.stream, !this.media.isOn('video'), !this.media.isOn('audio'));
    this.updateControls();
    this.refreshPeople();
    this.showMediaErrors(this.mediaErrors);

    this.sig = new Signalling({
      onMessage: (msg) => this.onMessage(msg),
      onClose: () => this.end('error', 'connection-lost'),
    });
    this.announced = this.muteState();
    const join = { room: this.room, name: this.name, ...this.announced, rejoinKey: this.rejoinKey };
    if (this.jwt) join.jwt = this.jwt;
    if (this.password) join.password = this.password;
    this.sig.connect(join);
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
    else if (isFatal(msg.code)) {
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
    this.you = msg.you;
    this.waitingReason = null;
    this.role = msg.role === 'moderator' ? 'moderator' : 'participant';
    this.roomState = normalizeRoomState(msg.room);
    this.moderation.update(this.roomState);
    storage.addRecentRoom(this.room);
    for (const p of msg.participants || []) this.addParticipant(p);
    showScreen('meeting');
    const count = (msg.participants || []).length;
    announce(count ? 'live.youJoinedOthers' : 'live.youJoinedAlone', { count });
    if (this.role === 'moderator') announce('live.self.moderator');
    if (this.role === 'moderator') {
      for (const l of msg.lobby || []) this.onLobbyRequest(l);
      for (const r of msg.unmuteRequests || []) this.onUnmuteRequest(r);
    }
    // Permissions first: a medium we may not send is switched off before the offer.
    this.applyPermissions(msg.permissions, true);
    this.call = new Call({
      send: (m) => this.sig.send(m),
      onRemoteTrack: (id, stream) => this.onRemoteTrack(id, stream),
      onFailed: () => this.end('error', 'media-failed'),
    });
    this.call.start(this.media.stream, this.media.audioTrack, this.media.videoTrack);
    // A toggle pressed while `join` was on its way is announced now.
    this.sendMute();
    this.updateControls();
    this.refreshPeople();
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
    };
    this.participants.set(p.id, participant);
    const tile = this.grid.get(p.id) || this.grid.add(participant);
    tile.setMuted(participant.audioMuted, participant.videoMuted);
    tile.setRole(participant.role);
    const stream = this.streams.get(p.id);
    if (stream) this.attach(p.id, stream);
    return !known;
  }

  removeParticipant(id) {
    const p = this.participants.get(id);
    this.participants.delete(id);
    this.streams.delete(id);
    closeMenuOf(id);
    this.grid.remove(id);
    for (const kind of KINDS) {
      this.unmuteRequests.delete(`${id}:${kind}`);
      this.notices.remove(`unmute:${id}:${kind}`);
    }
    if (p) announce('live.left', { name: p.name });
    this.refreshPeople();
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
    const moderator = this.role === 'moderator';
    const others = [];
    for (const p of this.participants.values()) {
      const tile = this.grid.get(p.id);
      const menu = moderator ? (button) => this.openParticipantMenu(button, p.id) : null;
      if (tile) {
        tile.setHand(positions.get(p.id) || null);
        tile.setMenu(menu);
      }
      others.push({ ...p, self: false, handPosition: positions.get(p.id) || null, menu });
    }
    if (this.grid.self) {
      this.grid.self.setHand(positions.get('self') || null);
      this.grid.self.setRole(this.role);
    }
    const me = {
      id: this.you || 'self',
      name: this.name,
      self: true,
      role: this.role,
      audioMuted: !this.media.isOn('audio'),
      videoMuted: !this.media.isOn('video'),
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
    if (!p || this.role !== 'moderator') return;
    const items = [];
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
    $('stage').dataset.panel = name;
    $(`panel-${name}-title`).focus();
  }

  /** Closes the open side panel; `returnFocus` puts focus back on its button if it was inside. */
  closePanel(returnFocus) {
    for (const name of ['participants', 'moderation']) {
      const panel = $(`panel-${name}`);
      const hadFocus = panel.contains(document.activeElement);
      panel.hidden = true;
      $(`ctl-${name}`).setAttribute('aria-expanded', 'false');
      if (hadFocus && returnFocus && this.panel === name) {
        const button = $(`ctl-${name}`);
        (button.hidden ? this.micBtn : button).focus();
      }
    }
    delete $('stage').dataset.panel;
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
    if (!this.you) return; // waiting: nothing to toggle yet
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

  end(reason, code, detail = {}) {
    if (this.ended) return;
    this.ended = true;
    const want = { audio: this.media.isOn('audio'), video: this.media.isOn('video') };
    this.listeners.abort();
    closeMenu(false);
    closeDialog();
    this.closePanel(false);
    this.notices.clear();
    this.list.clear();
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
