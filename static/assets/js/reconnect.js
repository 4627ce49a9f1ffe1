// Getting back into the meeting after the signalling connection dropped: the
// schedule of attempts (quick at first, then slower, and never for ever) and
// the banner that says what is going on. meeting.js makes each attempt.

import { announce } from './dom.js';

// About 35 s in all: longer than the server keeps our place (15 s), so a
// connection that comes back late still gets in, as a new participant.
const DELAYS_MS = [250, 750, 1500, 2500, 4000, 5000, 5000, 5000, 5000, 6000];

export class Reconnector {
  /**
   * @param {object} opts
   * @param {HTMLElement} opts.banner   shown while reconnecting
   * @param {() => void} opts.attempt   makes one attempt; answer with succeeded() or failed()
   * @param {() => void} opts.giveUp    every attempt failed
   */
  constructor({ banner, attempt, giveUp }) {
    this.banner = banner;
    this.attempt = attempt;
    this.giveUp = giveUp;
    this.tries = 0;
    this.timer = 0;
    this.active = false;
  }

  start() {
    if (this.active) return;
    this.active = true;
    this.tries = 0;
    this.banner.hidden = false;
    announce('live.reconnecting');
    this.schedule();
  }

  schedule() {
    clearTimeout(this.timer);
    if (this.tries >= DELAYS_MS.length) {
      this.cancel();
      this.giveUp();
      return;
    }
    const delay = DELAYS_MS[this.tries];
    this.tries += 1;
    this.timer = setTimeout(() => {
      if (this.active) this.attempt();
    }, delay);
  }

  /** Tries at once (the browser says it is back online). */
  now() {
    if (!this.active) return;
    clearTimeout(this.timer);
    this.attempt();
  }

  /** The attempt's socket closed before we were back in. */
  failed() {
    if (this.active) this.schedule();
  }

  succeeded() {
    if (!this.active) return;
    this.cancel();
    announce('live.reconnected');
  }

  cancel() {
    clearTimeout(this.timer);
    this.active = false;
    this.banner.hidden = true;
  }
}
