// Browser test: media through Zaal's own TURN server.
//
// Alice (the host) meets on UDP as usual. Bob's page may use relayed candidates only
// (`iceTransportPolicy: 'relay'`), so his media go through TURN/UDP even though the media
// port is in reach. A pupil joins from a network namespace of the test's own whose nftables
// let no UDP out except to the TURN port (and ICE-TCP is off): the media port is unreachable,
// so ICE can only succeed through the server's TURN over UDP. A second pupil's network drops
// all UDP: only TURN over TCP is left. All four decode each other's video and receive each
// other's audio; Bob's and the pupils' selected pairs are relayed (over UDP, UDP and TCP), the
// connection indicator says so, and the server counts their allocations.
//
// Needs root for the namespace (the test command runs it in one of its own), `ip`, `nft`.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import en from '../../static/assets/i18n/en.js';
import { Browser, Zaal, freePort, log, waitForMedia, waitUntil } from './harness.mjs';
import { PupilNetwork } from './netns.mjs';

const ROOM = 'relayed';
const HOST_USER = 'teacher';
const HOST_PASSWORD = 'correct horse battery';

let network = null;
let tcpOnly = null; // the second pupil's network: no UDP at all
let zaal = null;
let school = null;
let school2 = null;
let home = null;
let turnPort = null;

before(async () => {
  turnPort = await freePort();
  // Everything UDP is dropped but TURN, both ways.
  network = await PupilNetwork.create({
    index: 3,
    firewall: [
      'add table inet school',
      'add chain inet school out { type filter hook output priority 0 ; policy accept ; }',
      `add rule inet school out meta l4proto udp udp dport != ${turnPort} drop`,
      'add chain inet school in { type filter hook input priority 0 ; policy accept ; }',
      `add rule inet school in meta l4proto udp udp sport != ${turnPort} drop`,
    ],
  });
  tcpOnly = await PupilNetwork.create({
    index: 4,
    firewall: [
      'add table inet school',
      'add chain inet school out { type filter hook output priority 0 ; policy accept ; }',
      'add rule inet school out meta l4proto udp drop',
      'add chain inet school in { type filter hook input priority 0 ; policy accept ; }',
      'add rule inet school in meta l4proto udp drop',
    ],
  });
  zaal = await Zaal.start({
    hosts: { [HOST_USER]: HOST_PASSWORD },
    env: {
      ZAAL__HTTP__LISTEN: `${network.serverIp}:0`,
      ZAAL__MEDIA__ADVERTISE_IPS: network.serverIp,
      ZAAL__TURN__ENABLED: 'true',
      ZAAL__TURN__LISTEN: `${network.serverIp}:${turnPort}`,
    },
  });
  const args = [`--unsafely-treat-insecure-origin-as-secure=${zaal.base}`];
  home = await Browser.launch(zaal.base, { args });
  school = await Browser.launch(zaal.base, { args, executable: network.wrapper });
  school2 = await Browser.launch(zaal.base, { args, executable: tcpOnly.wrapper });
}, { timeout: 120000 });

after(async () => {
  for (const browser of [school2, school, home]) if (browser) await browser.close();
  if (zaal) await zaal.stop();
  for (const net of [network, tcpOnly]) if (net) net.close();
});

test('a page on relayed candidates only, a pupil who reaches only TURN over UDP and one without UDP meet through it', { timeout: 120000 }, async () => {
  const session = await zaal.login(HOST_USER, HOST_PASSWORD);
  await zaal.createRoom(session, ROOM);
  const pages = {};
  const join = async (browser, name, options = {}) => {
    const { page } = await browser.open(name, options);
    await page.goto(`${zaal.base}/${ROOM}#name=${encodeURIComponent(name)}&autojoin=1`);
    pages[name] = page;
  };
  await join(home, 'Alice', { session });
  await join(home, 'Bob', { relayOnly: true });
  await join(school, 'Pupil');
  await join(school2, 'Pupil2');

  const seen = {};
  for (const name of ['Alice', 'Bob', 'Pupil', 'Pupil2']) seen[name] = await waitForMedia(name, pages[name], 3, 45000);
  for (const [name, protocol] of [['Bob', 'udp'], ['Pupil', 'udp'], ['Pupil2', 'tcp']]) {
    const pair = seen[name].pair;
    assert.equal(pair.candidateType, 'relay', `${name}'s media are relayed: ${JSON.stringify(pair)}`);
    assert.equal(pair.relayProtocol, protocol, `${name} reaches TURN over ${protocol}`);
    assert.equal(pair.remotePort, zaal.mediaPort, `${name}'s relay sends to the media port`);
  }
  assert.notEqual(seen.Alice.pair.candidateType, 'relay', 'Alice goes direct');

  const saysRelay = en['quality.path'].replace('{path}', en['quality.path.relay-udp']);
  await waitUntil(`the pupil's connection indicator to say "${saysRelay}"`, async () => {
    const text = await pages.Pupil.locator('#quality .quality-details').textContent();
    return { ok: text.includes(saysRelay), state: text };
  }, { timeout: 10000 });
  const saysTcpRelay = en['quality.path'].replace('{path}', en['quality.path.relay-tcp']);
  await waitUntil(`the second pupil's connection indicator to say "${saysTcpRelay}"`, async () => {
    const text = await pages.Pupil2.locator('#quality .quality-details').textContent();
    return { ok: text.includes(saysTcpRelay), state: text };
  }, { timeout: 10000 });

  const metrics = (await zaal.request('GET', '/metrics')).text;
  const sample = (name) => Number((metrics.match(new RegExp(`^${name} (\\d+)`, 'm')) || [])[1] ?? NaN);
  assert.ok(sample('zaal_turn_allocations') >= 3, `the server holds their allocations (${sample('zaal_turn_allocations')})`);
  assert.ok(sample('zaal_turn_relayed_received_total') > 100, 'and relays their media in');
  assert.ok(sample('zaal_turn_relayed_sent_total') > 100, 'and out');
  log(`TURN: ${sample('zaal_turn_allocations')} allocations, ${sample('zaal_turn_relayed_received_total')} datagrams in, ${sample('zaal_turn_relayed_sent_total')} out`);
});
