// Browser test of HTTPS of Zaal's own (issue 19): Zaal gets its certificate from
// Pebble, the ACME test server (Debian's `pebble`), over tls-alpn-01 on its own
// HTTPS port; three headless Chromium pages trust that certificate (by its
// public key's hash, as an operator's browsers would trust a real CA) and hold a
// meeting over https:// and wss://.
//
//   unshare --net sh -c 'ip link set lo up; node --test tests/browser/https.test.mjs'
//
// Pebble resolves names through its mock DNS (`pebble-challtestsrv`), which
// answers 127.0.0.1 for every name; Chromium is told the same for zaal.test.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
// Pebble must be told Zaal's port before Zaal starts: hence free ports picked in advance.
import { Browser, Zaal, freePort, log, requestTo, waitForMedia, waitUntil } from './harness.mjs';

const HOST = 'zaal.test';
const ROOM = 'https-test';
const HOST_USER = 'teacher';
const HOST_PASSWORD = 'correct horse battery';
const NAMES = ['Alice', 'Bob', 'Carol'];

let tmp = null;
let zaal = null;
let browser = null;
const helpers = []; // pebble and its DNS
const pages = new Map();

async function waitForPort(port, what) {
  await waitUntil(`${what} on port ${port}`, () =>
    new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve({ ok: true });
      });
      socket.once('error', () => resolve({ ok: false, state: 'not yet' }));
    }), { timeout: 20000 });
}

function startHelper(cmd, args, env = {}) {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: 'ignore' });
  helpers.push(child);
  process.once('exit', () => child.kill('SIGKILL'));
  return child;
}

/** Pebble and its DNS; resolves to the ACME directory URL and the CA of Pebble's own listener. */
async function startPebble(tlsPort) {
  // Pebble's listener needs a certificate of its own, from a CA made here (a CA certificate
  // may not serve as a server's own: the ACME client would refuse it).
  const file = (name) => path.join(tmp, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  execFileSync('openssl', ['req', '-x509', ...ec, '-keyout', file('ca.key'), '-out', file('ca.crt'), '-days', '2',
    '-subj', '/CN=Zaal test CA'], { stdio: 'ignore' });
  execFileSync('openssl', ['req', ...ec, '-keyout', file('pebble.key'), '-out', file('pebble.csr'), '-subj', '/CN=pebble'],
    { stdio: 'ignore' });
  fs.writeFileSync(file('pebble.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n');
  execFileSync('openssl', ['x509', '-req', '-in', file('pebble.csr'), '-CA', file('ca.crt'), '-CAkey', file('ca.key'),
    '-CAcreateserial', '-out', file('pebble.crt'), '-days', '2', '-extfile', file('pebble.ext')], { stdio: 'ignore' });
  const cert = file('pebble.crt');
  const key = file('pebble.key');
  const [acme, management, dns, dnsManagement, httpPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  fs.writeFileSync(path.join(tmp, 'pebble.json'), JSON.stringify({
    pebble: {
      listenAddress: `127.0.0.1:${acme}`,
      managementListenAddress: `127.0.0.1:${management}`,
      certificate: cert,
      privateKey: key,
      httpPort,
      tlsPort,
      ocspResponderURL: '',
      externalAccountBindingRequired: false,
    },
  }));
  startHelper('pebble-challtestsrv', ['-defaultIPv4', '127.0.0.1', '-defaultIPv6', '', '-dns01', `127.0.0.1:${dns}`,
    '-management', `127.0.0.1:${dnsManagement}`, '-http01', '', '-https01', '', '-tlsalpn01', '']);
  await waitForPort(dnsManagement, 'pebble-challtestsrv');
  startHelper('pebble', ['-config', path.join(tmp, 'pebble.json'), '-dnsserver', `127.0.0.1:${dns}`],
    { PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0' });
  await waitForPort(acme, 'pebble');
  await waitForPort(management, "pebble's management interface");
  return { directory: `https://127.0.0.1:${acme}/dir`, ca: file('ca.crt'), management };
}

/** The root Pebble issues from (made at its start), from its management interface. */
async function pebbleRoot(management) {
  const https = await import('node:https');
  return new Promise((resolve, reject) => {
    // The management interface has a certificate of Pebble's own making; what counts is the
    // root it hands out, which then verifies Zaal's certificate.
    https.get({ host: '127.0.0.1', port: management, path: '/roots/0', rejectUnauthorized: false }, (res) => {
      let pem = '';
      res.on('data', (d) => (pem += d));
      res.on('end', () => (res.statusCode === 200 ? resolve(pem) : reject(new Error(`root: ${res.statusCode}`))));
    }).on('error', reject);
  });
}

/** The certificate Zaal presents for HOST, once it is Pebble's (not yet: the handshake fails). */
function presented(port) {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: HOST, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
    socket.once('secureConnect', () => {
      const cert = socket.getPeerX509Certificate();
      socket.destroy();
      resolve(cert ?? null);
    });
    socket.once('error', () => resolve(null));
  });
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'zaal-https-'));
  const port = await freePort();
  const pebble = await startPebble(port);
  zaal = await Zaal.start({
    tmp,
    hosts: { [HOST_USER]: HOST_PASSWORD },
    env: {
      ZAAL__HTTP__LISTEN: `127.0.0.1:${port}`,
      ZAAL__HTTP__PUBLIC_URL: `https://${HOST}:${port}`,
      ZAAL__TLS__ACME: 'on',
      ZAAL__TLS__ACME_DIRECTORY: pebble.directory,
      ZAAL__TLS__ACME_CA: pebble.ca,
    },
  });
  assert.equal(zaal.base, `https://${HOST}:${port}`);
  const leaf = await waitUntil('a certificate from Pebble', async () => {
    const cert = await presented(port);
    const ok = cert !== null && cert.subjectAltName?.includes(HOST);
    return { ok, state: ok ? cert : (cert?.subject ?? 'no handshake yet') };
  }, { timeout: 60000, interval: 250 });
  log(`Zaal serves ${leaf.subjectAltName}, issued by ${leaf.issuer.replace(/\n/g, ', ')}`);
  // Node's requests trust Pebble's root; Chromium trusts the leaf's public key, and resolves
  // the test's name to loopback.
  zaal.ca = await pebbleRoot(pebble.management);
  // Node has no resolver rule: the harness's requests to HOST go to 127.0.0.1.
  zaal.request = requestTo({ address: '127.0.0.1', port, host: HOST, ca: zaal.ca });
  const spki = crypto.createHash('sha256').update(leaf.publicKey.export({ type: 'spki', format: 'der' })).digest('base64');
  browser = await Browser.launch(zaal.base, {
    args: [`--ignore-certificate-errors-spki-list=${spki}`, `--host-resolver-rules=MAP ${HOST} 127.0.0.1`],
  });
  const session = await zaal.login(HOST_USER, HOST_PASSWORD);
  await zaal.createRoom(session, ROOM);
  zaal.session = session;
}, { timeout: 180000 });

after(async () => {
  if (browser) await browser.close();
  if (zaal) await zaal.stop();
  for (const child of helpers) child.kill('SIGKILL');
  await sleep(10);
});

test('three browsers hold a meeting over https and wss with a certificate from ACME', { timeout: 120000 }, async () => {
  for (const [i, name] of NAMES.entries()) {
    const { page } = await browser.open(name, { session: i === 0 ? zaal.session : null });
    pages.set(name, page);
    const response = await page.goto(`${zaal.base}/${ROOM}#name=${name}&autojoin=1&camera=on&mic=on`);
    assert.equal(response.status(), 200, `${name}'s page`);
    assert.ok(response.url().startsWith('https://'), response.url());
    const security = await response.securityDetails();
    assert.ok(security && /TLS 1\.[23]/.test(security.protocol), `${name}: ${security?.protocol}`);
    log(`${name} opened ${ROOM} over ${security.protocol}`);
  }
  for (const name of NAMES) {
    await waitForMedia(name, pages.get(name), NAMES.length - 1);
  }
  // The signalling went over wss:// (the page's own WebSocket), and the session cookie is Secure.
  const sockets = await pages.get('Alice').evaluate(() => window.__sockets.map((s) => s.url));
  assert.ok(sockets.length > 0 && sockets.every((u) => u.startsWith(`wss://${HOST}:`)), JSON.stringify(sockets));
  const cookies = await pages.get('Alice').context().cookies();
  const sessionCookie = cookies.find((c) => c.name === 'zaal_session');
  assert.ok(sessionCookie?.secure, JSON.stringify(sessionCookie));
  assert.deepEqual(browser.foreignRequests, [], 'nothing from another origin');
  assert.deepEqual(browser.scriptProblems, [], 'no page errors');
});
