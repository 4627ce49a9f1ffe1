// The meeting's tile grid: one tile per remote participant plus our own
// preview. A tile shows video when the participant's camera is on and frames
// actually arrive; otherwise a placeholder with their initials. Badges show a
// raised hand (with its place in the queue), the moderator role and a shared
// screen; a ring marks the current speaker. Each remote tile has a menu button
// (meeting.js fills the menu). While the stage is shown the grid becomes a
// strip beside or below it (zaal.css), and stops computing columns.

import { icon } from './icons.js';
import { setAria, setText } from './i18n.js';

// Below this width (px) a face or a name is hard to make out: the grid scrolls instead.
const MIN_TILE_WIDTH = 160;

/** Up to two initials, safe for names in any script (and emoji). */
export function initials(name) {
  const words = String(name).trim().split(/\s+/).filter(Boolean);
  if (!words.length) return '?';
  const first = Array.from(words[0])[0] || '';
  const last = words.length > 1 ? Array.from(words[words.length - 1])[0] || '' : '';
  return (first + last).toUpperCase();
}

/** A stable, dark placeholder colour per name (white initials on it meet WCAG AA). */
function avatarColour(name) {
  let h = 0;
  for (const ch of String(name)) h = (h * 31 + ch.codePointAt(0)) % 360;
  return `hsl(${h} 45% 32%)`;
}

function el(tag, className) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  return e;
}

/**
 * The track of `kind` to show from `stream`: the newest live one that
 * receives media, else the newest live one. After a media restart a stream
 * can briefly hold the old, silent track next to the new one.
 */
export function currentTrack(stream, kind) {
  if (!stream) return null;
  const live = (kind === 'audio' ? stream.getAudioTracks() : stream.getVideoTracks()).filter((t) => t.readyState === 'live');
  return [...live].reverse().find((t) => !t.muted) || live[live.length - 1] || null;
}

/** Points `element` at a stream of just `track` (or at nothing), only when that changes. */
export function bindTrack(element, track) {
  const bound = element.srcObject && element.srcObject.getTracks()[0];
  if ((bound || null) === track) return false;
  element.srcObject = track ? new MediaStream([track]) : null;
  return true;
}

class Tile {
  constructor({ id, name, self }) {
    this.id = id;
    this.name = name;
    this.self = self;
    this.stream = null;
    this.videoTrack = null;
    this.audioTrack = null;
    this.audioMuted = false;
    this.videoMuted = false;
    this.onMenu = null;

    this.root = el('div', self ? 'tile tile-self' : 'tile');
    this.root.setAttribute('role', 'group');
    if (!self) this.root.dataset.participant = id;
    this.root.dataset.video = 'off';

    this.video = el('video', self ? 'tile-video mirror' : 'tile-video');
    this.video.autoplay = true;
    this.video.playsInline = true;
    // Sound goes through the <audio> element below (or nowhere, for our own
    // tile), never through the video element, so it is played exactly once.
    this.video.muted = true;
    this.video.setAttribute('aria-hidden', 'true');

    this.avatar = el('div', 'tile-avatar');
    this.avatar.setAttribute('aria-hidden', 'true');
    this.initials = el('span', 'tile-initials');
    this.avatar.appendChild(this.initials);

    const footer = el('div', 'tile-footer');
    this.roleIcon = el('span', 'tile-icon tile-role');
    this.roleIcon.setAttribute('role', 'img');
    this.roleIcon.appendChild(icon('shield'));
    setAria(this.roleIcon, 'role.moderator');
    this.roleIcon.hidden = true;
    this.label = el('span', 'tile-name');
    this.icons = el('span', 'tile-icons');
    this.micIcon = el('span', 'tile-icon tile-mic-off');
    this.micIcon.setAttribute('role', 'img');
    this.micIcon.appendChild(icon('mic-off'));
    setAria(this.micIcon, 'tile.micOff');
    this.camIcon = el('span', 'tile-icon tile-cam-off');
    this.camIcon.setAttribute('role', 'img');
    this.camIcon.appendChild(icon('video-off'));
    setAria(this.camIcon, 'tile.cameraOff');
    this.screenIcon = el('span', 'tile-icon tile-screen');
    this.screenIcon.setAttribute('role', 'img');
    this.screenIcon.appendChild(icon('monitor'));
    setAria(this.screenIcon, 'tile.sharing');
    this.screenIcon.hidden = true;
    this.pinIcon = el('span', 'tile-icon tile-pin');
    this.pinIcon.setAttribute('role', 'img');
    this.pinIcon.appendChild(icon('pin'));
    setAria(this.pinIcon, 'tile.pinned');
    this.pinIcon.hidden = true;
    this.icons.append(this.micIcon, this.camIcon, this.screenIcon, this.pinIcon);
    footer.append(this.roleIcon, this.label, this.icons);

    this.hand = el('span', 'tile-hand');
    this.hand.setAttribute('role', 'img');
    this.hand.appendChild(icon('hand'));
    this.handNumber = el('span', 'tile-hand-n');
    this.handNumber.setAttribute('aria-hidden', 'true');
    this.hand.appendChild(this.handNumber);
    this.hand.hidden = true;

    this.root.append(this.video, this.avatar, this.hand, footer);

    if (!self) {
      this.menuButton = el('button', 'tile-menu-btn');
      this.menuButton.type = 'button';
      this.menuButton.setAttribute('aria-haspopup', 'menu');
      this.menuButton.setAttribute('aria-expanded', 'false');
      this.menuButton.appendChild(icon('more'));
      this.menuButton.hidden = true;
      this.menuButton.addEventListener('click', () => {
        if (this.onMenu) this.onMenu(this.menuButton);
      });
      this.root.appendChild(this.menuButton);
    }

    if (!self) {
      this.audio = el('audio');
      this.audio.autoplay = true;
      this.audio.hidden = true;
      this.root.appendChild(this.audio);
    }
    this.setName(name);
    this.onTrackChange = () => this.refresh();
  }

  setName(name) {
    this.name = name;
    if (this.self) {
      setText(this.label, 'tile.you', { name });
      setAria(this.root, 'tile.youGroup', { name });
    } else {
      this.label.textContent = name;
      this.root.setAttribute('aria-label', name);
      setAria(this.menuButton, 'menu.for', { name });
    }
    this.initials.textContent = initials(name);
    this.avatar.style.backgroundColor = avatarColour(name);
  }

  /** `position`: place in the queue of raised hands (1 = first), or null. */
  setHand(position) {
    this.hand.hidden = !position;
    if (position) {
      this.handNumber.textContent = String(position);
      setAria(this.hand, 'hand.raisedN', { n: position });
    }
  }

  setRole(role) {
    this.roleIcon.hidden = role !== 'moderator';
  }

  /** The ring of the current speaker. */
  setSpeaking(on) {
    this.root.classList.toggle('tile-speaking', on);
  }

  setSharing(on) {
    this.screenIcon.hidden = !on;
  }

  setPinned(on) {
    this.pinIcon.hidden = !on;
  }

  /** Shows the menu button (for moderators) calling `onMenu(button)`, or hides it with null. */
  setMenu(onMenu) {
    if (!this.menuButton) return;
    this.onMenu = onMenu;
    this.menuButton.hidden = !onMenu;
  }

  setMuted(audioMuted, videoMuted) {
    this.audioMuted = !!audioMuted;
    this.videoMuted = !!videoMuted;
    this.refresh();
  }

  /** Shows `stream`; resolves to false if the browser refused to start its sound. */
  setStream(stream) {
    if (this.stream !== stream) {
      if (this.stream) {
        this.stream.removeEventListener('addtrack', this.onTrackChange);
        this.stream.removeEventListener('removetrack', this.onTrackChange);
      }
      this.stream = stream;
      if (stream) {
        stream.addEventListener('addtrack', this.onTrackChange);
        stream.addEventListener('removetrack', this.onTrackChange);
      }
    }
    this.refresh();
    return this.playAudio();
  }

  /** Our own stream object stays the same while tracks come and go (no events for that): look again. */
  reload() {
    this.refresh();
  }

  playAudio() {
    if (!this.audio || !this.audio.srcObject) return Promise.resolve(true);
    const p = this.audio.play();
    // Only the autoplay policy (NotAllowedError) needs a click; other
    // failures (e.g. a new track interrupting play()) resolve by themselves.
    return p ? p.then(() => true, (err) => !err || err.name !== 'NotAllowedError') : Promise.resolve(true);
  }

  /** The camera track shown now (null: placeholder). */
  get shownVideoTrack() {
    return this.root.dataset.video === 'on' ? this.videoTrack : null;
  }

  refresh() {
    // Each element gets a stream of exactly one track: after a media restart
    // the participant's stream may hold an old track beside the new one.
    const video = currentTrack(this.stream, 'video');
    if (video !== this.videoTrack) {
      this.videoTrack = video;
      if (video) {
        // Remote tracks start muted and unmute when packets arrive.
        video.addEventListener('mute', this.onTrackChange);
        video.addEventListener('unmute', this.onTrackChange);
        video.addEventListener('ended', this.onTrackChange);
      }
    }
    bindTrack(this.video, video);
    if (this.audio) {
      const audio = currentTrack(this.stream, 'audio');
      if (audio !== this.audioTrack) {
        this.audioTrack = audio;
        if (audio) audio.addEventListener('unmute', this.onTrackChange);
      }
      if (bindTrack(this.audio, audio) && audio) this.playAudio();
    }
    // Own preview: a live local track is enough. Remote: also wait for frames
    // (track unmuted) so a tile never shows a black rectangle.
    const showVideo = !this.videoMuted && !!video && video.readyState === 'live' && (this.self || !video.muted);
    const changed = this.root.dataset.video !== (showVideo ? 'on' : 'off');
    this.root.dataset.video = showVideo ? 'on' : 'off';
    this.micIcon.hidden = !this.audioMuted;
    this.camIcon.hidden = !this.videoMuted;
    if (showVideo && this.video.paused) this.video.play().catch(() => {});
    if (changed && this.onVideoChange) this.onVideoChange(this);
  }

  destroy() {
    this.setStream(null);
    this.onVideoChange = null;
    this.root.remove();
  }
}

export class TileGrid {
  /** `onVideoChange(tile)`: a tile's picture came or went (the stage may show the same person). */
  constructor(container, { onVideoChange = null } = {}) {
    this.container = container;
    this.tiles = new Map();
    this.self = null;
    this.strip = false;
    this.onVideoChange = onVideoChange;
    this.resizeObserver = new ResizeObserver(() => this.layout());
    this.resizeObserver.observe(container);
  }

  /** Grid (false) or a strip beside the stage (true). */
  setStrip(on) {
    if (this.strip === on) return;
    this.strip = on;
    this.container.classList.toggle('tiles-strip', on);
    this.layout();
  }

  addSelf(name, stream, videoMuted, audioMuted) {
    this.self = new Tile({ id: 'self', name, self: true });
    this.self.onVideoChange = this.onVideoChange;
    this.container.appendChild(this.self.root);
    this.self.setMuted(audioMuted, videoMuted);
    this.self.setStream(stream);
    this.layout();
  }

  add({ id, name, audioMuted, videoMuted, role }) {
    if (this.tiles.has(id)) return this.tiles.get(id);
    const tile = new Tile({ id, name, self: false });
    tile.onVideoChange = this.onVideoChange;
    tile.setMuted(audioMuted, videoMuted);
    tile.setRole(role);
    this.tiles.set(id, tile);
    // Remote tiles come first, in joining order; our own preview stays last.
    this.container.insertBefore(tile.root, this.self ? this.self.root : null);
    this.layout();
    return tile;
  }

  get(id) {
    return this.tiles.get(id);
  }

  remove(id) {
    const tile = this.tiles.get(id);
    if (!tile) return;
    tile.destroy();
    this.tiles.delete(id);
    this.layout();
  }

  /** Plays every remote audio element again (after a click, when autoplay was refused). */
  resumeAudio() {
    return Promise.all([...this.tiles.values()].map((t) => t.playAudio())).then((r) => r.every(Boolean));
  }

  /** Empties the grid for good (a new TileGrid is made for the next meeting). */
  clear() {
    this.resizeObserver.disconnect();
    for (const id of [...this.tiles.keys()]) this.remove(id);
    if (this.self) this.self.destroy();
    this.self = null;
  }

  /**
   * Picks the column count that makes the (16:9) tiles as large as possible
   * in the space available: one column on a phone for a few people, a square
   * grid on a wide screen. Below MIN_TILE_WIDTH tiles stop shrinking and the
   * grid scrolls, so fifty people stay recognisable.
   */
  layout() {
    const n = this.tiles.size + (this.self ? 1 : 0);
    if (!n || this.strip) return;
    const gap = 8; // keep in step with .tiles { gap; padding } in zaal.css
    const W = this.container.clientWidth - 2 * gap;
    const H = this.container.clientHeight - 2 * gap;
    if (W <= 0 || H <= 0) return;
    let best = { cols: 1, width: 0 };
    for (let cols = 1; cols <= n; cols++) {
      const rows = Math.ceil(n / cols);
      const w = Math.min((W - gap * (cols - 1)) / cols, ((H - gap * (rows - 1)) / rows) * (16 / 9));
      if (w > best.width) best = { cols, width: w };
    }
    if (best.width < MIN_TILE_WIDTH) {
      // Too many to fit: as many columns of recognisable tiles as the width
      // takes, filling it, and the rows scroll.
      const cols = Math.max(1, Math.floor((W + gap) / (MIN_TILE_WIDTH + gap)));
      best = { cols, width: Math.min(W, (W - gap * (cols - 1)) / cols) };
    }
    this.container.style.setProperty('--cols', String(best.cols));
    this.container.style.setProperty('--tile-w', `${Math.floor(best.width)}px`);
  }
}
