// The connection-quality indicator in the header: every two seconds it reads
// the peer connection's statistics — round-trip time and available outgoing
// bitrate of the selected candidate pair, packet loss of what we receive and
// of what the server receives from us — and shows one level as bars and
// words, with the numbers for whoever wants them, and which path the media
// take: directly over UDP, over TCP to the server (ICE-TCP, for networks that
// let no UDP out) or through a TURN relay. Only the step down to "poor" and
// back up is announced: more would drown the meeting; the path is never
// announced, it is there for whoever asks (or helps someone on the phone).

import { announce } from './dom.js';
import { setText, setTitle } from './i18n.js';

const INTERVAL_MS = 2000;
// Interactive speech starts to suffer above ~300 ms round trip and a few percent loss.
const GOOD = { rtt: 0.3, loss: 0.02 };
const FAIR = { rtt: 0.6, loss: 0.08 };
const TOO_LITTLE_BITRATE = 100000; // bit/s: not even one small video fits

/** One level from the measurements (rtt in seconds, loss 0–1, bitrate in bit/s; null: unknown). */
export function qualityLevel({ rtt, loss, bitrate }) {
  const r = rtt ?? 0;
  const l = loss ?? 0;
  if (r > FAIR.rtt || l > FAIR.loss) return 'poor';
  if (r > GOOD.rtt || l > GOOD.loss || (bitrate !== null && bitrate !== undefined && bitrate < TOO_LITTLE_BITRATE)) return 'fair';
  return 'good';
}

const RELAY_PROTOCOLS = new Set(['udp', 'tcp', 'tls']);

/**
 * The path the media take, from the selected candidate pair's local candidate
 * (its `protocol`, `candidateType` and `relayProtocol` statistics): 'udp'
 * (directly), 'tcp' (ICE-TCP to the server), 'relay-udp', 'relay-tcp' or
 * 'relay-tls' (TURN, by how we reach the relay), 'relay' (TURN, protocol not
 * reported), or null when the statistics do not say.
 */
export function mediaPath({ protocol, candidateType, relayProtocol } = {}) {
  const lower = (v) => (typeof v === 'string' ? v.toLowerCase() : null);
  if (lower(candidateType) === 'relay') {
    const via = lower(relayProtocol);
    return RELAY_PROTOCOLS.has(via) ? `relay-${via}` : 'relay';
  }
  const proto = lower(protocol);
  return proto === 'udp' || proto === 'tcp' ? proto : null;
}

export class QualityIndicator {
  /** @param {HTMLElement} root  #quality, holding .quality-label and .quality-details */
  constructor(root) {
    this.root = root;
    this.label = root.querySelector('.quality-label');
    this.details = root.querySelector('.quality-details');
    this.pc = null;
    this.timer = 0;
    this.last = null; // previous packet counters, for loss over the last interval
    this.level = null;
    this.lost = false;
  }

  /** Starts watching `pc` (a new one after every media restart). */
  watch(pc) {
    this.pc = pc;
    this.last = null;
    this.root.hidden = false;
    if (!this.lost) this.show('connecting', null);
    clearInterval(this.timer);
    this.timer = setInterval(() => this.sample(), INTERVAL_MS);
  }

  /** While the signalling connection is being restored, nothing else is worth saying. */
  setLost(lost) {
    this.lost = lost;
    if (lost) this.show('lost', null);
    else this.show('connecting', null);
  }

  stop() {
    clearInterval(this.timer);
    this.pc = null;
    this.level = null;
    this.root.hidden = true;
  }

  async sample() {
    const pc = this.pc;
    if (!pc || this.lost) return;
    if (pc.connectionState !== 'connected') {
      this.show(pc.connectionState === 'new' || pc.connectionState === 'connecting' ? 'connecting' : 'lost', null);
      return;
    }
    let report;
    try {
      report = await pc.getStats();
    } catch {
      return; // closed meanwhile
    }
    if (pc !== this.pc) return;
    let pair = null;
    let received = 0;
    let lostIn = 0;
    let lostOut = null;
    report.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId) || pair;
      if (s.type === 'inbound-rtp') {
        received += s.packetsReceived || 0;
        lostIn += Math.max(0, s.packetsLost || 0);
      }
      if (s.type === 'remote-inbound-rtp' && Number.isFinite(s.fractionLost)) lostOut = Math.max(lostOut ?? 0, s.fractionLost);
    });
    let loss = lostOut;
    if (this.last) {
      const got = received - this.last.received;
      const missed = lostIn - this.last.lostIn;
      if (got + missed > 0) loss = Math.max(loss ?? 0, missed / (got + missed));
    }
    this.last = { received, lostIn };
    const rtt = pair && Number.isFinite(pair.currentRoundTripTime) ? pair.currentRoundTripTime : null;
    const bitrate = pair && Number.isFinite(pair.availableOutgoingBitrate) ? pair.availableOutgoingBitrate : null;
    const path = pair ? mediaPath(report.get(pair.localCandidateId) || {}) : null;
    this.show(qualityLevel({ rtt, loss, bitrate }), { rtt, loss, bitrate, path });
  }

  show(level, numbers) {
    const before = this.level;
    this.level = level;
    this.root.dataset.level = level;
    setText(this.label, `quality.${level}`);
    const parts = [];
    if (numbers && numbers.rtt !== null) parts.push(['quality.rtt', { ms: Math.round(numbers.rtt * 1000) }]);
    if (numbers && numbers.loss !== null) parts.push(['quality.loss', { percent: (numbers.loss * 100).toFixed(1) }]);
    if (numbers && numbers.bitrate !== null) parts.push(['quality.bitrate', { kbps: Math.round(numbers.bitrate / 1000) }]);
    if (numbers && numbers.path) parts.push(['quality.path', { path: { key: `quality.path.${numbers.path}` } }]);
    this.details.replaceChildren(
      ...parts.flatMap(([key, params]) => {
        const span = document.createElement('span');
        setText(span, key, params);
        return [' ', span];
      }),
    );
    // The same numbers as a tooltip, for a mouse; the hidden text above is for screen readers.
    const titleKey = numbers && numbers.path ? 'quality.titleWithPath' : 'quality.title';
    setTitle(this.root, numbers ? titleKey : `quality.${level}`, numbers ? this.titleParams(numbers) : undefined);
    if (level === 'poor' && before !== 'poor') announce('quality.live.poor');
    if (before === 'poor' && (level === 'good' || level === 'fair')) announce('quality.live.better');
  }

  titleParams({ rtt, loss, bitrate, path }) {
    const dash = '–';
    return {
      ms: rtt === null ? dash : Math.round(rtt * 1000),
      percent: loss === null ? dash : (loss * 100).toFixed(1),
      kbps: bitrate === null ? dash : Math.round(bitrate / 1000),
      ...(path ? { path: { key: `quality.path.${path}` } } : {}),
    };
  }
}
