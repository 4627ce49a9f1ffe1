// Shared by the browser tests: runs the real `zaal` server on ephemeral ports,
// starts headless Chromium with fake camera and microphone, opens pages (one
// browser context per participant) and reads what they receive with getStats().
//
// Environment: ZAAL_BIN (default target/release/zaal, relative to the repo
// root), CHROMIUM (default /usr/bin/chromium), ZAAL_KEEP_TMP=1 keeps the temp
// dir (data and logs) for a look afterwards.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const ZAAL_BIN = path.resolve(REPO, process.env.ZAAL_BIN || 'target/release/zaal');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const LISTENING = /listening on (https?:\/\/\S+) .*media on udp (\S+):(\d+)/i;

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
  '--autoplay-policy=no-user-gesture-required',
  '--allow-loopback-in-peer-connection',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
];

// Runs in every page before its own scripts: remembers each RTCPeerConnection
// (and which stream each received track arrived in) so the test can read
// getStats(), and each WebSocket so a test can drop the signalling connection
// (the product code has no test hooks).
const RECORD_PEER_CONNECTIONS = () => {
  const Original = window.RTCPeerConnection;
  window.__pcs = [];
  window.__tracks = []; // {pc: index in __pcs, track: id, kind, streams: [stream ids]}
  window.RTCPeerConnection = class extends Original {
    constructor(...args) {
      super(...args);
      const pc = window.__pcs.push(this) - 1;
      this.addEventListener('track', (ev) => {
        window.__tracks.push({ pc, track: ev.track.id, kind: ev.track.kind, streams: ev.streams.map((s) => s.id) });
      });
    }
  };
  const OriginalSocket = window.WebSocket;
  window.__sockets = [];
  window.WebSocket = class extends OriginalSocket {
    constructor(...args) {
      super(...args);
      window.__sockets.push(this);
    }
  };
};

// Runs after RECORD_PEER_CONNECTIONS in a page opened with `webrtc: false`:
// a browser built without WebRTC, as some embedded ones are.
const REMOVE_WEBRTC = () => {
  delete window.RTCPeerConnection;
  window.RTCPeerConnection = undefined;
};

// Runs after RECORD_PEER_CONNECTIONS in a page opened with `relayOnly: true`: every
// peer connection uses relayed candidates only (`iceTransportPolicy: 'relay'`), as a
// browser on a network that reaches nothing but a TURN server would end up doing.
const RELAY_ONLY = () => {
  const Recorded = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Recorded {
    constructor(config = {}, ...rest) {
      super({ ...config, iceTransportPolicy: 'relay' }, ...rest);
    }
  };
};

export const log = (...args) => console.log('[browser]', ...args);

/** A TCP port free on this machine now, for a port that must be known before its server starts. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '0.0.0.0', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Polls `probe` (→ {ok, state}) every `interval` ms until ok, or fails after `timeout` ms with the last state. */
export async function waitUntil(what, probe, { timeout = 30000, interval = 100 } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await probe();
    if (last.ok) return last.state;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what}; last state: ${JSON.stringify(last.state)}`);
    }
    await sleep(interval);
  }
}

/** Runs a command to completion (bounded), feeding `input` on stdin. */
function run(cmd, args, { env, input, timeoutMs }) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${path.basename(cmd)} ${args.join(' ')} did not finish in ${timeoutMs} ms:\n${out}`));
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${path.basename(cmd)} ${args.join(' ')} exited with ${code}:\n${out}`));
    });
    child.stdin.end(input ?? '');
  });
}

/**
 * A `zaal.request` for a server whose public name the test's resolver does not know: requests
 * go to `address`:`port` with `host` as the TLS name and Host header, trusting `ca`.
 */
export function requestTo({ address, port, host, ca }) {
  return (method, urlPath, options = {}) =>
    new Promise((resolve, reject) => {
      const req = https.request({
        host: address, port, servername: host, path: urlPath, method,
        headers: { Host: `${host}:${port}`, ...(options.headers ?? {}) },
        ca,
      }, (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => {
          const setCookie = res.headers['set-cookie'] ?? [];
          resolve({ status: res.statusCode, text, cookies: Array.isArray(setCookie) ? setCookie : [setCookie] });
        });
      });
      req.on('error', reject);
      req.end(options.body);
    });
}

/** One `zaal serve` on ephemeral ports, with its own temporary data and log directories. */
export class Zaal {
  /**
   * Adds the host accounts in `hosts` ({name: password}), then starts the server with the
   * extra environment `env`. `ca`: the PEM the test trusts the server's HTTPS certificate by.
   */
  static async start({ hosts = {}, env = {}, ca = null, tmp = null } = {}) {
    if (!fs.existsSync(ZAAL_BIN)) throw new Error(`no server binary at ${ZAAL_BIN} (build it, or set ZAAL_BIN)`);
    const zaal = new Zaal();
    zaal.extraEnv = env;
    zaal.ca = ca;
    zaal.tmp = tmp ?? fs.mkdtempSync(path.join(os.tmpdir(), 'zaal-browser-'));
    log(`temp dir ${zaal.tmp}`);
    for (const [user, password] of Object.entries(hosts)) {
      await run(ZAAL_BIN, ['user', 'add', user], { env: zaal.env(), input: `${password}\n`, timeoutMs: 60000 });
      log(`host "${user}" added`);
    }
    await zaal.serve(20000);
    log(`server at ${zaal.base}, media on udp port ${zaal.mediaPort}`);
    return zaal;
  }

  constructor() {
    this.tmp = null;
    this.process = null;
    this.output = '';
    this.base = null; // e.g. http://127.0.0.1:39123
    this.mediaPort = null;
    this.extraEnv = {};
    this.ca = null;
  }

  /** An HTTP request to the server, over HTTPS with the test's trust when `ca` is set. */
  async request(method, urlPath, { headers = {}, body = undefined } = {}) {
    const url = `${this.base}${urlPath}`;
    if (!this.ca) {
      const res = await fetch(url, { method, headers, body });
      return { status: res.status, text: await res.text(), cookies: res.headers.getSetCookie() };
    }
    return new Promise((resolve, reject) => {
      const req = https.request(url, { method, headers, ca: this.ca }, (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => {
          const setCookie = res.headers['set-cookie'] ?? [];
          resolve({ status: res.statusCode, text, cookies: Array.isArray(setCookie) ? setCookie : [setCookie] });
        });
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  env() {
    return { ...process.env, ZAAL__DATA__DIR: path.join(this.tmp, 'data'), ZAAL__LOGS__DIR: path.join(this.tmp, 'logs') };
  }

  serve(timeoutMs) {
    return new Promise((resolve, reject) => {
      const server = spawn(ZAAL_BIN, ['serve'], {
        env: {
          ...this.env(),
          ZAAL__HTTP__LISTEN: '127.0.0.1:0',
          ZAAL__MEDIA__UDP_PORT: '0',
          ZAAL__MEDIA__TCP_PORT: '0',
          ZAAL__TURN__ENABLED: 'false',
          ZAAL__MEDIA__ADVERTISE_IPS: '127.0.0.1',
          ...this.extraEnv,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      this.process = server;
      // The server must not outlive the test, whatever happens.
      const kill = () => {
        if (!server.exited) server.kill('SIGKILL');
      };
      process.once('exit', kill);
      for (const signal of ['SIGINT', 'SIGTERM']) {
        process.once(signal, () => {
          kill();
          process.exit(130);
        });
      }
      let pending = '';
      let done = false;
      const finish = (err) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve();
      };
      const timer = setTimeout(() => finish(new Error(`server printed no "listening on" line within ${timeoutMs} ms:\n${this.output}`)), timeoutMs);
      const onData = (d) => {
        const text = d.toString();
        this.output += text;
        if (done) return;
        pending += text;
        const lines = pending.split('\n');
        pending = lines.pop();
        for (const line of lines) {
          const m = LISTENING.exec(line);
          if (m) {
            this.base = m[1].replace(/\/+$/, '');
            this.mediaPort = Number(m[3]);
            finish();
            return;
          }
        }
      };
      server.stdout.on('data', onData);
      server.stderr.on('data', onData);
      server.on('error', (err) => finish(err));
      server.on('exit', (code, signal) => {
        server.exited = true;
        finish(new Error(`server exited (${code ?? signal}) before listening:\n${this.output}`));
      });
    });
  }

  /** Logs a host in through the API; resolves to the value of the session cookie. */
  async login(user, password) {
    const res = await this.request('POST', '/api/login', {
      headers: { 'Content-Type': 'application/json', Origin: this.base },
      body: JSON.stringify({ username: user, password }),
    });
    assert.equal(res.status, 200, `login failed: ${res.status} ${res.text}`);
    const cookie = res.cookies.map((c) => c.split(';')[0]).find((c) => c.startsWith('zaal_session='));
    assert.ok(cookie, 'login set no zaal_session cookie');
    return cookie.slice('zaal_session='.length);
  }

  /** Creates (or re-opens) a room as the host whose session this is. */
  async createRoom(session, name) {
    const res = await this.request('POST', '/api/rooms', {
      headers: { 'Content-Type': 'application/json', Origin: this.base, Cookie: `zaal_session=${session}` },
      body: JSON.stringify({ name }),
    });
    assert.ok([200, 201].includes(res.status), `creating room ${name} failed: ${res.status} ${res.text}`);
    log(`room "${name}" created`);
  }

  async stop() {
    const server = this.process;
    if (server && !server.exited) {
      const exited = new Promise((resolve) => server.once('exit', resolve));
      server.kill('SIGTERM');
      const stopped = await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]);
      if (!stopped) {
        log('server did not stop within 5 s of SIGTERM; killing it');
        server.kill('SIGKILL');
        await exited;
      }
    }
    if (this.tmp && !process.env.ZAAL_KEEP_TMP) fs.rmSync(this.tmp, { recursive: true, force: true });
    else if (this.tmp) log(`kept ${this.tmp}`);
  }
}

/**
 * Headless Chromium, and the pages a test file opens in it. Every page is
 * watched: uncaught errors, Content-Security-Policy violations and requests to
 * any origin but the server's own are collected, for one assertion at the end.
 */
export class Browser {
  /**
   * `args`: Chromium flags beyond the usual ones (e.g. which certificate to trust).
   * `executable`: what to start instead of Chromium itself (e.g. a wrapper that runs it in
   * another network namespace).
   */
  static async launch(base, { args = [], executable = CHROMIUM } = {}) {
    if (!fs.existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM)`);
    const b = new Browser(base);
    b.browser = await chromium.launch({ executablePath: executable, headless: true, args: [...CHROMIUM_ARGS, ...args] });
    log(`Chromium ${b.browser.version()} started`);
    return b;
  }

  constructor(base) {
    this.base = base;
    this.browser = null;
    this.contexts = [];
    this.scriptProblems = [];
    this.foreignRequests = [];
  }

  /**
   * A new page in a context of its own. `session`: a host's session cookie
   * value, so the context is logged in (the browser sends it on the WebSocket too).
   * `webrtc: false`: the page has no RTCPeerConnection. `relayOnly`: its peer
   * connections use TURN-relayed candidates only.
   */
  async open(label, { session = null, viewport = { width: 640, height: 480 }, webrtc = true, relayOnly = false } = {}) {
    const context = await this.browser.newContext({ viewport, locale: 'en-US' });
    this.contexts.push(context);
    if (session) {
      await context.addCookies([{ name: 'zaal_session', value: session, url: this.base, httpOnly: true, sameSite: 'Strict' }]);
    }
    await context.addInitScript(RECORD_PEER_CONNECTIONS);
    if (!webrtc) await context.addInitScript(REMOVE_WEBRTC);
    if (relayOnly) await context.addInitScript(RELAY_ONLY);
    const wsBase = this.base.replace(/^http/, 'ws');
    context.on('request', (request) => {
      const url = request.url();
      const own = url.startsWith(`${this.base}/`) || url.startsWith(`${wsBase}/`);
      if (!own && !url.startsWith('data:') && !url.startsWith('blob:')) this.foreignRequests.push(`${label}: ${url}`);
    });
    const page = await context.newPage();
    page.on('pageerror', (err) => {
      this.scriptProblems.push(`${label}: uncaught ${err.message}`);
      log(`${label}: page error: ${err.message}`);
    });
    page.on('console', (msg) => {
      if (msg.type() !== 'error' && msg.type() !== 'warning') return;
      const text = msg.text();
      if (/Content Security Policy/i.test(text)) this.scriptProblems.push(`${label}: ${text}`);
      log(`${label}: console ${msg.type()}: ${text}`);
    });
    return { context, page };
  }

  async close() {
    for (const context of this.contexts) await context.close().catch(() => {});
    if (this.browser) await this.browser.close().catch(() => {});
  }
}

/** Media as the page's (latest, open) peer connection sees it. */
export function mediaStats(page) {
  return page.evaluate(async () => {
    const pcs = (window.__pcs || []).filter((pc) => pc.connectionState !== 'closed');
    const pc = pcs[pcs.length - 1];
    if (!pc) return { peerConnections: 0 };
    const report = await pc.getStats();
    const out = { connectionState: pc.connectionState, video: [], audio: [], pair: null };
    let transport = null;
    report.forEach((s) => {
      if (s.type === 'inbound-rtp') {
        const entry = { framesDecoded: s.framesDecoded || 0, packetsReceived: s.packetsReceived || 0 };
        (s.kind === 'video' ? out.video : out.audio).push(entry);
      }
      if (s.type === 'transport' && s.selectedCandidatePairId) transport = s;
    });
    let pair = transport ? report.get(transport.selectedCandidatePairId) : null;
    if (!pair) {
      report.forEach((s) => {
        if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s;
      });
    }
    if (pair) {
      const remote = report.get(pair.remoteCandidateId) || {};
      const local = report.get(pair.localCandidateId) || {};
      out.pair = {
        state: pair.state,
        local: `${local.address ?? local.ip}:${local.port}`,
        remoteAddress: remote.address ?? remote.ip,
        remotePort: remote.port,
        // 'udp' or 'tcp' (the path to the server), and the local candidate's type
        // ('host', 'srflx', 'prflx', or 'relay' with relayProtocol udp/tcp/tls).
        protocol: local.protocol,
        candidateType: local.candidateType,
        relayProtocol: local.relayProtocol ?? null,
      };
    }
    return out;
  });
}

/** Waits until `page` decodes ≥ n video streams and receives ≥ n audio streams. */
export async function waitForMedia(label, page, n, timeout = 30000) {
  const state = await waitUntil(`${label} to decode ${n} video and receive ${n} audio streams`, async () => {
    const s = await mediaStats(page);
    const video = (s.video || []).filter((v) => v.framesDecoded > 0).length;
    const audio = (s.audio || []).filter((a) => a.packetsReceived > 0).length;
    // The selected pair reads 'in-progress' while a consent check is out: wait for a moment
    // between checks rather than asserting on whichever instant the poll hit.
    const settled = s.pair && s.pair.state === 'succeeded';
    return { ok: video >= n && audio >= n && settled, state: { ...s, decodingVideo: video, receivingAudio: audio } };
  }, { timeout });
  log(`${label}: ${state.decodingVideo} video streams decoding, ${state.receivingAudio} audio streams arriving, via ${state.pair && state.pair.protocol} ${state.pair && state.pair.local} → ${state.pair && `${state.pair.remoteAddress}:${state.pair.remotePort}`}`);
  return state;
}

export function assertOnePort(label, state, mediaPort) {
  assert.ok(state.pair, `${label}: no selected candidate pair`);
  assert.equal(state.pair.state, 'succeeded', `${label}: candidate pair not succeeded`);
  assert.equal(state.pair.remotePort, mediaPort, `${label}: media goes to port ${state.pair.remotePort}, not the server's media port ${mediaPort}`);
}

/** The remote tiles the page shows, by participant name. */
export function remoteTiles(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('#tiles .tile:not(.tile-self)')].map((tile) => {
      const video = tile.querySelector('video');
      const audio = tile.querySelector('audio');
      const audioStream = audio && audio.srcObject;
      return {
        name: (tile.querySelector('.tile-name') || {}).textContent,
        video: tile.dataset.video,
        videoWidth: video ? video.videoWidth : 0,
        audioTracks: audioStream ? audioStream.getAudioTracks().length : 0,
        audioPlaying: !!audio && !audio.paused,
      };
    }),
  );
}

/** Audio packets received so far from the participant shown as `name` (matched by the tile's track), or null. */
export function audioPacketsFrom(page, name) {
  return page.evaluate(async (who) => {
    const tile = [...document.querySelectorAll('#tiles .tile:not(.tile-self)')].find(
      (t) => (t.querySelector('.tile-name') || {}).textContent === who,
    );
    const stream = tile && tile.querySelector('audio') && tile.querySelector('audio').srcObject;
    const track = stream && stream.getAudioTracks()[0];
    const pc = (window.__pcs || []).filter((p) => p.connectionState !== 'closed').pop();
    if (!track || !pc) return null;
    const report = await pc.getStats();
    let packets = null;
    report.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'audio' && s.trackIdentifier === track.id) packets = s.packetsReceived || 0;
    });
    return packets;
  }, name);
}

/**
 * The camera track the page shows on the tile of `name` and the frames decoded
 * from it so far ({track, framesDecoded}), or null while there is none. After a
 * media restart the tile switches to the new track, so the id says which one.
 */
export function videoFramesFrom(page, name) {
  return page.evaluate(async (who) => {
    const tile = [...document.querySelectorAll('#tiles .tile:not(.tile-self)')].find(
      (t) => (t.querySelector('.tile-name') || {}).textContent === who,
    );
    const stream = tile && tile.querySelector('video') && tile.querySelector('video').srcObject;
    const track = stream && stream.getVideoTracks()[0];
    const pc = (window.__pcs || []).filter((p) => p.connectionState !== 'closed').pop();
    if (!track || !pc) return null;
    let frames = null;
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video' && s.trackIdentifier === track.id) frames = s.framesDecoded || 0;
    });
    return frames === null ? null : { track: track.id, framesDecoded: frames };
  }, name);
}

/** The most RTP packets any inbound stream of any of the page's peer connections (open or closed) has received. */
export function mostPacketsReceived(page) {
  return page.evaluate(async () => {
    let most = 0;
    for (const pc of window.__pcs || []) {
      try {
        (await pc.getStats()).forEach((s) => {
          if (s.type === 'inbound-rtp') most = Math.max(most, s.packetsReceived || 0);
        });
      } catch {
        // A closed connection may refuse: it had nothing, or was counted before.
      }
    }
    return most;
  });
}
