// Browser test: media through a school network that lets no UDP out.
//
// Alice (the host) and Bob meet on UDP as usual; a pupil joins from a network namespace of
// the test's own whose nftables drop every UDP packet, so ICE can only succeed over TCP: the
// server's passive ICE-TCP candidate on media.tcp_port (RFC 6544). All three decode each
// other's video and receive each other's audio, the pupil's selected candidate pair is TCP,
// and Alice's and Bob's stay UDP; each one's connection indicator says so.
//
// Then a late pupil joins on UDP from a second network, whose firewall starts dropping UDP in
// the middle of the meeting: within 10 s its media run over TCP, on the same page, and the
// others never lose its tile.
//
// Needs root for the namespace (the test command runs it in one of its own), `ip`, `nft`.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import en from '../../static/assets/i18n/en.js';
import { Browser, Zaal, freePort, log, mediaStats, remoteTiles, videoFramesFrom, waitForMedia, waitUntil } from './harness.mjs';
import { PupilNetwork } from './netns.mjs';

const ROOM = 'firewall';
const DROP_UDP = [
  'add table inet school',
  'add chain inet school out { type filter hook output priority 0 ; policy accept ; }',
  'add rule inet school out meta l4proto udp drop',
  'add chain inet school in { type filter hook input priority 0 ; policy accept ; }',
  'add rule inet school in meta l4proto udp drop',
];
const HOST_USER = 'teacher';
const HOST_PASSWORD = 'correct horse battery';

let network = null;
let zaal = null;
let school = null; // the browser on the pupil's network
let home = null; // the browser beside the server
let tcpPort = null;
let lateNetwork = null; // a second pupil's, whose firewall closes during the meeting
let late = null; // the browser on it
const pages = {};
let joinAs = null; // the first test's way of joining, for the second

before(async () => {
  network = await PupilNetwork.create({
    index: 1,
    firewall: DROP_UDP,
  });
  lateNetwork = await PupilNetwork.create({ index: 2 });
  // 0 turns the ICE-TCP port off: pick a free one.
  tcpPort = await freePort();
  zaal = await Zaal.start({
    hosts: { [HOST_USER]: HOST_PASSWORD },
    env: {
      ZAAL__HTTP__LISTEN: `${network.serverIp}:0`,
      ZAAL__MEDIA__ADVERTISE_IPS: network.serverIp,
      ZAAL__MEDIA__TCP_PORT: String(tcpPort),
    },
  });
  // The pages come from the veth address, which is no secure context by itself.
  const args = [`--unsafely-treat-insecure-origin-as-secure=${zaal.base}`];
  home = await Browser.launch(zaal.base, { args });
  school = await Browser.launch(zaal.base, { args, executable: network.wrapper });
  late = await Browser.launch(zaal.base, { args, executable: lateNetwork.wrapper });
}, { timeout: 120000 });

after(async () => {
  for (const browser of [late, school, home]) if (browser) await browser.close();
  if (zaal) await zaal.stop();
  for (const net of [network, lateNetwork]) if (net) net.close();
});

test('a pupil whose network drops all UDP meets the others over ICE-TCP', { timeout: 120000 }, async () => {
  const session = await zaal.login(HOST_USER, HOST_PASSWORD);
  await zaal.createRoom(session, ROOM);
  // The firewall holds: nothing UDP leaves the pupil's namespace.
  assert.match(network.exec(['nft', 'list', 'ruleset']), /meta l4proto udp drop/);

  const join = async (browser, name, options = {}) => {
    const { page } = await browser.open(name, options);
    await page.goto(`${zaal.base}/${ROOM}#name=${encodeURIComponent(name)}&autojoin=1`);
    pages[name] = page;
  };
  joinAs = join;
  await join(home, 'Alice', { session });
  await join(home, 'Bob');
  await join(school, 'Pupil');

  const seen = {};
  for (const name of ['Alice', 'Bob', 'Pupil']) seen[name] = await waitForMedia(name, pages[name], 2, 45000);

  assert.equal(seen.Pupil.pair.protocol, 'tcp', `the pupil's media go over TCP: ${JSON.stringify(seen.Pupil.pair)}`);
  assert.equal(seen.Pupil.pair.remotePort, tcpPort, 'to the ICE-TCP port');
  assert.equal(seen.Pupil.pair.remoteAddress, network.serverIp);
  for (const name of ['Alice', 'Bob']) {
    assert.equal(seen[name].pair.protocol, 'udp', `${name} stays on UDP: ${JSON.stringify(seen[name].pair)}`);
    assert.equal(seen[name].pair.remotePort, zaal.mediaPort);
  }

  // The connection indicator in each one's header tells which path their media take.
  for (const [name, path] of [['Pupil', 'tcp'], ['Alice', 'udp'], ['Bob', 'udp']]) {
    const said = en['quality.path'].replace('{path}', en[`quality.path.${path}`]);
    const details = await waitUntil(`${name}'s connection indicator to say "${said}"`, async () => {
      const text = await pages[name].locator('#quality .quality-details').textContent();
      return { ok: text.includes(said), state: text };
    }, { timeout: 10000 });
    log(`${name}'s connection indicator: "${details.trim()}"`);
  }

  const metrics = (await zaal.request('GET', '/metrics')).text;
  const sample = (name) => Number((metrics.match(new RegExp(`^${name} (\\d+)`, 'm')) || [])[1] ?? NaN);
  assert.ok(sample('zaal_media_tcp_connections') >= 1, 'the server counts the TCP connection');
  assert.ok(sample('zaal_media_tcp_frames_sent_total') > 100, 'and the media it sent over it');
  log(`ICE-TCP: ${sample('zaal_media_tcp_connections')} connection(s), ${sample('zaal_media_tcp_frames_received_total')} frames in, ${sample('zaal_media_tcp_frames_sent_total')} out`);
});

test('a pupil whose network starts dropping UDP mid-meeting goes on over TCP, on the same page', { timeout: 120000 }, async () => {
  assert.ok(joinAs, 'the first test set up the meeting');
  await joinAs(late, 'Late');
  const before = await waitForMedia('Late', pages.Late, 3, 45000);
  assert.equal(before.pair.protocol, 'udp', 'first on UDP, like everyone whose network allows it');
  await pages.Late.evaluate(() => { window.__sameDocument = true; });
  // Late decoding the others does not mean the others already show Late: wait for Alice too.
  await waitUntil('Alice to decode Late', async () => {
    const seen = await videoFramesFrom(pages.Alice, 'Late');
    return { ok: !!seen && seen.framesDecoded > 0, state: seen };
  }, { timeout: 15000 });

  lateNetwork.block(DROP_UDP);
  const cut = Date.now();
  const after = await waitUntil('Late to receive media over TCP again', async () => {
    const s = await mediaStats(pages.Late);
    return { ok: s.connectionState === 'connected' && s.pair && s.pair.protocol === 'tcp' && s.pair.state === 'succeeded', state: s };
  }, { timeout: 10000, interval: 200 });
  const recovered = Date.now() - cut;
  const connections = await pages.Late.evaluate(() => window.__pcs.length);
  log(`Late: on TCP ${recovered} ms after UDP was cut, via ${after.pair.local} → ${after.pair.remoteAddress}:${after.pair.remotePort} (peer connections so far: ${connections})`);
  assert.equal(after.pair.remotePort, tcpPort);
  // Media flow both ways again: Late decodes the others, and Alice decodes Late.
  const framesNow = async (page, name) => (await videoFramesFrom(page, name))?.framesDecoded ?? 0;
  const lateSees = await framesNow(pages.Late, 'Alice');
  const aliceSees = await framesNow(pages.Alice, 'Late');
  await waitUntil('frames to flow both ways over TCP', async () => {
    const state = { late: await framesNow(pages.Late, 'Alice'), alice: await framesNow(pages.Alice, 'Late') };
    return { ok: state.late > lateSees + 10 && state.alice > aliceSees + 10, state };
  }, { timeout: 10000, interval: 200 });
  const saysTcp = en['quality.path'].replace('{path}', en['quality.path.tcp']);
  await waitUntil(`Late's connection indicator to say "${saysTcp}"`, async () => {
    const text = await pages.Late.locator('#quality .quality-details').textContent();
    return { ok: text.includes(saysTcp), state: text };
  }, { timeout: 10000 });
  assert.equal(await pages.Late.evaluate(() => window.__sameDocument), true, 'no reload');
  for (const name of ['Alice', 'Bob', 'Pupil']) {
    const tiles = (await remoteTiles(pages[name])).map((t) => t.name);
    assert.ok(tiles.includes('Late'), `${name} still shows Late's tile: ${tiles}`);
  }
});
