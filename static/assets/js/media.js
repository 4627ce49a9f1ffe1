// The local camera and microphone. A track exists only while its device is
// switched on: switching off stops the track, so the camera light (and the
// browser's recording indicator) goes out.

import * as storage from './storage.js';

const KINDS = ['audio', 'video'];

function constraints(kind, deviceId) {
  const c =
    kind === 'video'
      ? // Enough for three simulcast layers (call.js); more would cost every
        // sender's CPU for a picture hardly anyone sees larger than a tile.
        { width: { ideal: 960 }, height: { ideal: 540 }, frameRate: { ideal: 20, max: 30 } }
      : { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
  if (deviceId) c.deviceId = { exact: deviceId };
  return c;
}

/** Maps a getUserMedia failure to one of our message keys' suffixes. */
function reason(err) {
  switch (err && err.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'denied';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'notfound';
    case 'NotReadableError':
    case 'AbortError':
      return 'inuse';
    default:
      return 'other';
  }
}

export function mediaSupported() {
  // Browsers hide mediaDevices outside secure contexts (plain http on a non-localhost host).
  return !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
}

export class LocalMedia {
  constructor() {
    // One stream for the life of the page: transceivers are tied to its id.
    this.stream = new MediaStream();
    this.tracks = { audio: null, video: null };
    this.deviceIds = { audio: storage.get('micDevice'), video: storage.get('cameraDevice') };
    /** Called with (kind) when a device disappears or stops by itself. */
    this.onEnded = () => {};
  }

  get audioTrack() {
    return this.tracks.audio;
  }

  get videoTrack() {
    return this.tracks.video;
  }

  isOn(kind) {
    return !!this.tracks[kind];
  }

  adopt(kind, track) {
    this.drop(kind);
    this.tracks[kind] = track;
    this.stream.addTrack(track);
    track.addEventListener('ended', () => {
      if (this.tracks[kind] === track) {
        this.drop(kind);
        this.onEnded(kind);
      }
    });
    // Remember the device actually chosen, so the next visit starts with it.
    const id = track.getSettings().deviceId;
    if (id) {
      this.deviceIds[kind] = id;
      storage.set(kind === 'audio' ? 'micDevice' : 'cameraDevice', id);
    }
  }

  drop(kind) {
    const track = this.tracks[kind];
    if (!track) return;
    this.tracks[kind] = null;
    this.stream.removeTrack(track);
    track.stop();
  }

  async request(want) {
    const c = {};
    for (const kind of KINDS) if (want[kind]) c[kind] = constraints(kind, this.deviceIds[kind]);
    try {
      return await navigator.mediaDevices.getUserMedia(c);
    } catch (err) {
      // A remembered device may have been unplugged: try any device of that kind.
      const stale = KINDS.some((k) => want[k] && this.deviceIds[k]);
      if (stale && (err.name === 'OverconstrainedError' || err.name === 'NotFoundError')) {
        for (const kind of KINDS) if (want[kind]) c[kind] = constraints(kind, null);
        return navigator.mediaDevices.getUserMedia(c);
      }
      throw err;
    }
  }

  /**
   * Switches on the devices in `want` ({audio, video}), one prompt for both
   * where possible. If the pair fails (say, there is no camera) each is tried
   * alone, so a working microphone is never lost to a missing camera.
   * Resolves to { audio: errorReason|null, video: errorReason|null }.
   */
  async start(want) {
    const errors = { audio: null, video: null };
    const kinds = KINDS.filter((k) => want[k] && !this.tracks[k]);
    if (!kinds.length) return errors;
    if (!mediaSupported()) {
      kinds.forEach((k) => (errors[k] = 'insecure'));
      return errors;
    }
    try {
      const stream = await this.request(Object.fromEntries(kinds.map((k) => [k, true])));
      for (const track of stream.getTracks()) this.adopt(track.kind, track);
      return errors;
    } catch (err) {
      if (kinds.length === 1) {
        errors[kinds[0]] = reason(err);
        return errors;
      }
    }
    for (const kind of kinds) {
      try {
        const stream = await this.request({ [kind]: true });
        this.adopt(kind, stream.getTracks()[0]);
      } catch (err) {
        errors[kind] = reason(err);
      }
    }
    return errors;
  }

  /** Switches one device on or off; resolves to an error reason or null. */
  async set(kind, on) {
    if (!on) {
      this.drop(kind);
      return null;
    }
    const errors = await this.start({ [kind]: true });
    return errors[kind];
  }

  /** Chooses another device; if that kind is on, switches to it now. */
  async choose(kind, deviceId) {
    this.deviceIds[kind] = deviceId || null;
    storage.set(kind === 'audio' ? 'micDevice' : 'cameraDevice', deviceId || null);
    if (!this.tracks[kind]) return null;
    this.drop(kind);
    return this.set(kind, true);
  }

  /** Lists cameras and microphones ({video: [], audio: []}); labels appear once permission is granted. */
  async devices() {
    const out = { audio: [], video: [] };
    if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return out;
    try {
      for (const d of await navigator.mediaDevices.enumerateDevices()) {
        if (!d.deviceId) continue; // Hidden until permission: nothing useful to show.
        if (d.kind === 'audioinput') out.audio.push(d);
        if (d.kind === 'videoinput') out.video.push(d);
      }
    } catch {
      // Listing devices is a convenience; without it the default device is used.
    }
    return out;
  }

  stopAll() {
    KINDS.forEach((k) => this.drop(k));
  }
}
