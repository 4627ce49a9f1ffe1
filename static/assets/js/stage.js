// The stage: one picture shown large, with the tiles as a strip beside or
// below it. It decides what deserves the stage, in this order: the newest
// shared screen (for everyone, whatever view they chose), a participant
// someone pinned for themselves, and in stage view whoever speaks. With none
// of these the stage goes away and the tiles are a grid again.
//
// Our own shared screen is not played back to us (a picture of the screen on
// the screen only repeats itself); the stage says that we are sharing and
// offers to stop.

import { setText } from './i18n.js';
import { bindTrack, currentTrack, initials } from './tiles.js';

export class Stage {
  /**
   * @param {object} opts
   * @param {HTMLElement} opts.root        #stage
   * @param {HTMLElement} opts.area        the meeting area, whose data-layout follows the stage
   * @param {import('./tiles.js').TileGrid} opts.grid
   * @param {(id: string) => ({name: string, self: boolean, tile: object}|null)} opts.describe  'self' is us
   * @param {() => string[]} opts.others   remote participant ids, in joining order
   */
  constructor({ root, area, grid, describe, others }) {
    this.root = root;
    this.area = area;
    this.grid = grid;
    this.describe = describe;
    this.others = others;
    this.video = root.querySelector('.stage-video');
    this.avatar = root.querySelector('.stage-avatar');
    this.initials = root.querySelector('.stage-initials');
    this.caption = root.querySelector('.stage-caption');
    this.waiting = root.querySelector('.stage-waiting');
    this.shares = []; // ids sharing a screen, oldest first ('self' for us)
    this.screenStreams = new Map(); // id → the `<id>~screen` MediaStream
    this.pinned = null;
    this.speaker = null; // the last remote speaker: when we speak, they stay on stage
    this.mode = 'grid';
    this.shown = null; // {kind, id} on stage now
    this.onScreenChange = () => this.render();
  }

  /** 'grid' or 'stage' (the person's choice; a screen or a pin shows the stage in either). */
  setMode(mode) {
    this.mode = mode === 'stage' ? 'stage' : 'grid';
    this.render();
  }

  setSharing(id, active) {
    this.shares = this.shares.filter((s) => s !== id);
    if (active) this.shares.push(id);
    this.render();
  }

  isSharing(id) {
    return this.shares.includes(id);
  }

  setScreenStream(id, stream) {
    const old = this.screenStreams.get(id);
    if (old && old !== stream) {
      old.removeEventListener('addtrack', this.onScreenChange);
      old.removeEventListener('removetrack', this.onScreenChange);
    }
    this.screenStreams.set(id, stream);
    stream.addEventListener('addtrack', this.onScreenChange);
    stream.addEventListener('removetrack', this.onScreenChange);
    for (const track of stream.getVideoTracks()) {
      // Frames start (unmute) and stop (mute) without a word in signalling.
      track.addEventListener('mute', this.onScreenChange);
      track.addEventListener('unmute', this.onScreenChange);
      track.addEventListener('ended', this.onScreenChange);
    }
    this.render();
  }

  /** Pins `id` (or unpins with null): for us alone, nobody else is told. */
  pin(id) {
    this.pinned = id;
    this.render();
  }

  setSpeaker(id) {
    if (id && id !== 'self') this.speaker = id;
    this.render();
  }

  /** A participant left (or the media restarted): nothing of theirs stays on stage. */
  forget(id) {
    this.shares = this.shares.filter((s) => s !== id);
    this.screenStreams.delete(id);
    if (this.pinned === id) this.pinned = null;
    if (this.speaker === id) this.speaker = null;
    this.render();
  }

  /** Screen streams belong to a peer connection: a new one brings new streams. */
  dropScreenStreams() {
    this.screenStreams.clear();
    this.render();
  }

  choice() {
    for (const id of [...this.shares].reverse()) {
      if (id === 'self') return { kind: 'own-screen', id };
      if (this.describe(id)) return { kind: 'screen', id };
    }
    if (this.pinned && this.describe(this.pinned)) return { kind: 'camera', id: this.pinned };
    if (this.mode !== 'stage') return null;
    if (this.speaker && this.describe(this.speaker)) return { kind: 'camera', id: this.speaker };
    const first = this.others()[0];
    return { kind: 'camera', id: first || 'self' };
  }

  /** What is on stage now, for others to ask ({kind: 'screen'|'own-screen'|'camera', id} or null). */
  get current() {
    return this.shown;
  }

  render() {
    const c = this.choice();
    this.shown = c;
    this.root.hidden = !c;
    this.area.dataset.layout = c ? 'stage' : 'grid';
    this.grid.setStrip(!!c);
    if (!c) {
      bindTrack(this.video, null);
      return;
    }
    const who = this.describe(c.id) || { name: '', self: c.id === 'self', tile: null };
    let track = null;
    if (c.kind === 'screen') {
      const stream = this.screenStreams.get(c.id);
      const t = currentTrack(stream, 'video');
      if (t && !t.muted) track = t;
      setText(this.caption, 'stage.screenOf', { name: who.name });
      setText(this.waiting, 'stage.waitingScreen', { name: who.name });
    } else if (c.kind === 'own-screen') {
      setText(this.caption, 'stage.ownScreen');
    } else {
      track = who.tile ? who.tile.shownVideoTrack : null;
      if (who.self) setText(this.caption, 'tile.you', { name: who.name });
      else {
        this.caption.removeAttribute('data-i18n');
        this.caption.textContent = who.name;
      }
      this.initials.textContent = initials(who.name);
    }
    this.root.dataset.kind = c.kind;
    this.root.dataset.participant = c.id;
    this.root.dataset.video = track ? 'on' : 'off';
    this.video.classList.toggle('mirror', c.kind === 'camera' && who.self);
    if (bindTrack(this.video, track) && track) this.video.play().catch(() => {});
  }
}
