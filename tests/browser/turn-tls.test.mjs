// Browser test: media through Zaal's TURN over TLS on its HTTPS port, for a network that lets
// out nothing but HTTPS.
//
// Zaal serves HTTPS (a self-signed certificate for its name) and tells participants of TURN
// over TLS on that same port beside its UDP and TCP TURN. A pupil's network namespace drops all
// UDP and every TCP connection but to the HTTPS port: the page loads, and its media can only go
// through TURN over TLS on the HTTPS port, which the server tells from web requests by their
// missing ALPN and first bytes. The pupil and Alice (beside the server, on UDP) decode each
// other's video and receive each other's audio; the pupil's pair is relayed over TLS.
//
// Needs root for the namespace (the test command runs it in one of its own), `ip`, `nft`.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import tls from 'node:tls';
import en from '../../static/assets/i18n/en.js';
import { Browser, Zaal, freePort, log, requestTo, waitForMedia, waitUntil } from './harness.mjs';
import { PupilNetwork } from './netns.mjs';

const ROOM = 'only-https';
const HOST = 'meet.zaal.test';
const HOST_USER = 'teacher';
const HOST_PASSWORD = 'correct horse battery';

let network = null;
let zaal = null;
let school = null;
let home = null;
let port = null;

/** The certificate Zaal presents for HOST. */
function presented(address) {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: address, port, servername: HOST, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
    socket.once('secureConnect', () => {
      const cert = socket.getPeerX509Certificate();
      socket.destroy();
      resolve(cert);
    });
    socket.once('error', reject);
  });
}

before(async () => {
  port = await freePort();
  network = await PupilNetwork.create({
    index: 5,
    firewall: [
      'add table inet school',
      'add chain inet school out { type filter hook output priority 0 ; policy accept ; }',
      'add rule inet school out meta l4proto udp drop',
      `add rule inet school out meta l4proto tcp tcp dport != ${port} drop`,
      'add chain inet school in { type filter hook input priority 0 ; policy accept ; }',
      'add rule inet school in meta l4proto udp drop',
      `add rule inet school in meta l4proto tcp tcp sport != ${port} drop`,
    ],
  });
  zaal = await Zaal.start({
    hosts: { [HOST_USER]: HOST_PASSWORD },
    env: {
      ZAAL__HTTP__LISTEN: `${network.serverIp}:${port}`,
      ZAAL__HTTP__PUBLIC_URL: `https://${HOST}:${port}`,
      ZAAL__TLS__SELF_SIGNED: 'true',
      ZAAL__MEDIA__ADVERTISE_IPS: network.serverIp,
      ZAAL__TURN__ENABLED: 'true',
      ZAAL__TURN__LISTEN: `${network.serverIp}:0`,
    },
  });
  const leaf = await presented(network.serverIp);
  zaal.request = requestTo({ address: network.serverIp, port, host: HOST, ca: leaf.toString() });
  const spki = crypto.createHash('sha256').update(leaf.publicKey.export({ type: 'spki', format: 'der' })).digest('base64');
  const args = [`--ignore-certificate-errors-spki-list=${spki}`, `--host-resolver-rules=MAP ${HOST} ${network.serverIp}`];
  home = await Browser.launch(zaal.base, { args });
  school = await Browser.launch(zaal.base, { args, executable: network.wrapper });
}, { timeout: 120000 });

after(async () => {
  for (const browser of [school, home]) if (browser) await browser.close();
  if (zaal) await zaal.stop();
  if (network) network.close();
});

test('a pupil whose network lets out only HTTPS meets through TURN over TLS on the HTTPS port', { timeout: 120000 }, async () => {
  const session = await zaal.login(HOST_USER, HOST_PASSWORD);
  await zaal.createRoom(session, ROOM);
  const pages = {};
  const join = async (browser, name, options = {}) => {
    const { page } = await browser.open(name, options);
    await page.goto(`${zaal.base}/${ROOM}#name=${encodeURIComponent(name)}&autojoin=1`);
    pages[name] = page;
  };
  await join(home, 'Alice', { session });
  await join(school, 'Pupil');
  const seen = {};
  for (const name of ['Alice', 'Pupil']) seen[name] = await waitForMedia(name, pages[name], 1, 45000);
  const pair = seen.Pupil.pair;
  assert.equal(pair.candidateType, 'relay', `the pupil's media are relayed: ${JSON.stringify(pair)}`);
  assert.equal(pair.relayProtocol, 'tls', 'over TLS');
  assert.notEqual(seen.Alice.pair.candidateType, 'relay', 'Alice goes direct');
  const says = en['quality.path'].replace('{path}', en['quality.path.relay-tls']);
  await waitUntil(`the pupil's connection indicator to say "${says}"`, async () => {
    const text = await pages.Pupil.locator('#quality .quality-details').textContent();
    return { ok: text.includes(says), state: text };
  }, { timeout: 10000 });
  // The page itself still came over HTTPS on the same port.
  assert.ok(pages.Pupil.url().startsWith(`https://${HOST}:${port}/`));
});
