// The signalling WebSocket (docs/protocol.md, version 1): one JSON object per
// text frame. This module only moves messages; meeting.js decides what they mean.

export const PROTOCOL_VERSION = 1;

/** Error codes after which the server closes the socket, or which end our session anyway. */
export const FATAL_CODES = new Set([
  'unsupported-version',
  'invalid-room',
  'invalid-name',
  'room-not-found',
  'conference-full',
  'media-failed',
  'room-locked',
  'password-required',
  'password-wrong',
  'too-many-attempts',
  'barred',
  'denied',
  'removed',
  'conference-ended',
  'tokens-disabled',
  'server-shutting-down',
  'internal',
]);

/** True for codes that end the session (every `token-…` refusal among them). */
export function isFatal(code) {
  return FATAL_CODES.has(code) || (typeof code === 'string' && code.startsWith('token-'));
}

export class Signalling {
  /**
   * @param {{onMessage: (msg: object) => void, onClose: (ev: CloseEvent) => void}} handlers
   */
  constructor({ onMessage, onClose }) {
    this.onMessage = onMessage;
    this.onClose = onClose;
    this.ws = null;
    this.closed = false;
  }

  /** Opens the socket and sends `join` as its first message. */
  connect(join) {
    const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
    const ws = new WebSocket(scheme + location.host + '/ws');
    this.ws = ws;
    ws.addEventListener('open', () => this.send({ type: 'join', version: PROTOCOL_VERSION, ...join }));
    ws.addEventListener('message', (ev) => {
      if (typeof ev.data !== 'string') return;
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return; // The server never sends this; ignoring is safer than failing.
      }
      if (msg && typeof msg.type === 'string' && !this.closed) this.onMessage(msg);
    });
    ws.addEventListener('close', (ev) => {
      if (this.closed) return;
      this.closed = true;
      this.onClose(ev);
    });
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  /** Leaves politely (the server closes the socket); our close handler stays silent. */
  leave() {
    if (this.closed) return;
    this.send({ type: 'leave' });
    this.close();
  }

  close() {
    this.closed = true;
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000);
  }
}
