// Sharing our own screen: asks the browser for a screen, window or tab with
// getDisplayMedia (the browser shows its own picker, and its own "stop
// sharing" control, which we notice through the track ending). Sending it is
// the call's third transceiver; meeting.js ties the two together.

/** Phones and older browsers cannot share a screen: the button is not offered there. */
export function screenShareSupported() {
  return !!(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia);
}

export class ScreenShare {
  constructor() {
    this.track = null;
    /** Called when the sharing stopped without us (the browser's own control, or the window closed). */
    this.onEnded = () => {};
  }

  get active() {
    return !!this.track;
  }

  /** Resolves to null when sharing started, or to 'denied' / 'other'. */
  async start() {
    if (this.track) return null;
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({
        // Text must stay sharp; motion matters less. A modest rate keeps the uplink free for voice.
        video: { frameRate: { ideal: 15, max: 30 } },
        audio: false,
      });
    } catch (err) {
      return err && (err.name === 'NotAllowedError' || err.name === 'AbortError') ? 'denied' : 'other';
    }
    const track = stream.getVideoTracks()[0];
    if (!track) return 'other';
    if ('contentHint' in track) track.contentHint = 'detail';
    this.track = track;
    track.addEventListener('ended', () => {
      if (this.track !== track) return;
      this.track = null;
      this.onEnded();
    });
    return null;
  }

  stop() {
    const track = this.track;
    this.track = null;
    if (track) track.stop();
  }
}
