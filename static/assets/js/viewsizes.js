// Tells the server how large each remote video is shown, so it can send each
// the simulcast layer that fills its tile and no more (docs/protocol.md,
// `receive-video`): a thumbnail gets the smallest layer, the stage the
// largest, and a tile scrolled out of view none at all, which spares both our
// downlink and our CPU in a full classroom.

const REPORT_EVERY_MS = 1000;
/** The largest height the server accepts (8K). */
const MAX_HEIGHT = 4320;

/**
 * The height in device pixels at which `element` is visible now: 0 when it is
 * hidden or entirely outside `clip` (a scrolling container) or the window.
 */
export function shownHeight(element, clip) {
  if (!element || element.hidden || !element.isConnected) return 0;
  const r = element.getBoundingClientRect();
  if (r.width <= 0 || r.height <= 0) return 0;
  let top = Math.max(r.top, 0);
  let bottom = Math.min(r.bottom, window.innerHeight);
  let left = Math.max(r.left, 0);
  let right = Math.min(r.right, window.innerWidth);
  if (clip) {
    const c = clip.getBoundingClientRect();
    top = Math.max(top, c.top);
    bottom = Math.min(bottom, c.bottom);
    left = Math.max(left, c.left);
    right = Math.min(right, c.right);
  }
  if (bottom <= top || right <= left) return 0;
  return Math.min(MAX_HEIGHT, Math.round(r.height * (window.devicePixelRatio || 1)));
}

export class ViewSizeReporter {
  /**
   * @param {(msg: object) => void} send           sends a signalling message
   * @param {() => Record<string, number>} collect  stream id → shown height
   */
  constructor(send, collect) {
    this.send = send;
    this.collect = collect;
    this.timer = 0;
    this.last = null;
  }

  start() {
    this.stop();
    this.last = null; // a new connection knows nothing yet
    this.timer = setInterval(() => this.report(), REPORT_EVERY_MS);
    this.report();
  }

  /** Sends the sizes if they changed since the last report. */
  report() {
    const heights = this.collect();
    const key = JSON.stringify(Object.entries(heights).sort());
    if (key === this.last) return;
    this.last = key;
    this.send({ type: 'receive-video', heights });
  }

  stop() {
    clearInterval(this.timer);
    this.timer = 0;
  }
}
