// Browser test of access and moderation (docs/protocol.md, "Access and roles"):
// the real `zaal` server and the real web client in headless Chromium.
//
//   node --test tests/browser/moderation.test.mjs
//
// Environment and set-up: as zaal.test.mjs (see harness.mjs); run it in a
// network namespace that has only `lo`:
//
//   unshare --net sh -c 'ip link set lo up; node --test tests/browser/moderation.test.mjs'
//
// The host's pages carry the host's session cookie (logged in through the
// API), so they join as moderator. Screenshots of the moderator's view go to
// $ZAAL_SCREENSHOTS (default: the system temp dir), for a human look.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Browser, Zaal, audioPacketsFrom, log, mostPacketsReceived, waitForMedia, waitUntil } from './harness.mjs';

const HOST_USER = 'teacher';
const HOST_PASSWORD = 'correct horse battery';
const SCREENSHOTS = process.env.ZAAL_SCREENSHOTS || path.join(os.tmpdir(), 'zaal-screenshots');
const VISIBLE = { state: 'visible', timeout: 15000 };

let zaal = null;
let browser = null;
let session = null;

/** Opens `room` as `name`, joining at once; `host` pages carry the host's session. */
async function enter(room, name, { host = false, camera = 'on', mic = 'on', viewport } = {}) {
  const { page } = await browser.open(name, { session: host ? session : null, viewport });
  await page.goto(`${zaal.base}/${room}#name=${encodeURIComponent(name)}&autojoin=1&camera=${camera}&mic=${mic}`);
  log(`${name} opened ${room}${host ? ' as the host' : ''}`);
  return page;
}

const tileOf = (page, name) => page.locator('#tiles .tile[data-participant]', { hasText: name });

before(async () => {
  zaal = await Zaal.start({ hosts: { [HOST_USER]: HOST_PASSWORD } });
  session = await zaal.login(HOST_USER, HOST_PASSWORD);
  for (const room of ['lobby-test', 'mute-test', 'rooms-test', 'spare-room']) await zaal.createRoom(session, room);
  browser = await Browser.launch(zaal.base);
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
}, { timeout: 120000 });

after(async () => {
  if (browser) await browser.close();
  if (zaal) await zaal.stop();
});

test('A: guests wait for the host, then the host runs a lobby: admit one, deny another', { timeout: 120000 }, async () => {
  const guest = await enter('lobby-test', 'Gina');
  await guest.locator('#screen-waiting[data-reason="host"]').waitFor(VISIBLE);
  assert.match(await guest.locator('#waiting-title').textContent(), /waiting for the host/i);
  assert.equal(await guest.locator('#waiting-leave').isVisible(), true, 'the waiting screen has a Leave button');
  log('Gina waits for the host');

  const host = await enter('lobby-test', 'Teacher', { host: true });
  await host.locator('#screen-meeting').waitFor(VISIBLE);
  assert.equal(await host.locator('#ctl-moderation').isVisible(), true, 'the host joined as moderator');
  await guest.locator('#screen-meeting').waitFor(VISIBLE);
  await waitForMedia('Teacher', host, 1);
  await waitForMedia('Gina', guest, 1);
  log('the host arrived: Gina was let in and both see and hear each other');

  await host.click('#ctl-moderation');
  await host.click('#mod-lobby');
  await host.locator('#mod-lobby[aria-checked="true"]').waitFor(VISIBLE);
  log('the host switched the lobby on');

  const admitted = await enter('lobby-test', 'Hugo');
  await admitted.locator('#screen-waiting[data-reason="lobby"]').waitFor(VISIBLE);
  assert.match(await admitted.locator('#waiting-title').textContent(), /lobby/i);
  const hugoCard = host.locator('.notice-card', { hasText: 'Hugo' });
  await hugoCard.waitFor(VISIBLE);
  await hugoCard.getByRole('button', { name: 'Admit Hugo' }).click();
  await admitted.locator('#screen-meeting').waitFor(VISIBLE);
  await waitForMedia('Hugo', admitted, 2);
  await hugoCard.waitFor({ state: 'detached', timeout: 15000 });
  log('Hugo knocked, was admitted and decodes video');

  const denied = await enter('lobby-test', 'Ida');
  // Ida must never receive media: watch her page from the start.
  let mostPackets = 0;
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      mostPackets = Math.max(mostPackets, await mostPacketsReceived(denied).catch(() => 0));
      await sleep(200);
    }
  })();
  try {
    await denied.locator('#screen-waiting[data-reason="lobby"]').waitFor(VISIBLE);
    const idaCard = host.locator('.notice-card', { hasText: 'Ida' });
    await idaCard.waitFor(VISIBLE);
    await idaCard.getByRole('button', { name: 'Deny Ida' }).click();
    await denied.locator('#screen-error[data-code="denied"]').waitFor(VISIBLE);
    assert.match(await denied.locator('#error-title').textContent(), /not let in/i);
    await idaCard.waitFor({ state: 'detached', timeout: 15000 });
    await sleep(2000);
  } finally {
    watching = false;
    await watcher;
  }
  assert.equal(mostPackets, 0, 'the denied page received RTP packets');
  log('Ida knocked, was denied, sees the denied screen and never received a packet');
});

test('B: the host hard-mutes a guest, who asks to speak, is allowed and is heard again', { timeout: 120000 }, async () => {
  const host = await enter('mute-test', 'Teacher', { host: true, viewport: { width: 1280, height: 800 } });
  await host.locator('#screen-meeting').waitFor(VISIBLE);
  const guest = await enter('mute-test', 'Jan');
  await guest.locator('#screen-meeting').waitFor(VISIBLE);
  await waitForMedia('Teacher', host, 1);
  await waitForMedia('Jan', guest, 1);
  const packets = () => audioPacketsFrom(host, 'Jan');
  // Audio flows (50 packets a second) before the mute, so "it stopped" means something.
  const flowing = await waitUntil('the host to receive Jan’s audio for a while', async () => {
    const n = await packets();
    return { ok: n >= 100, state: n };
  });
  await waitUntil('Jan’s audio to keep arriving', async () => {
    const n = await packets();
    return { ok: n > flowing, state: { before: flowing, now: n } };
  }, { timeout: 5000 });

  await tileOf(host, 'Jan').locator('.tile-menu-btn').click();
  await host.getByRole('menuitem', { name: 'Mute microphone' }).click();
  const mutedAt = Date.now();
  log('the host muted Jan’s microphone from the tile menu');

  // Poll every 100 ms: the count must stop growing within 1 s and stay put.
  const samples = [];
  while (Date.now() - mutedAt < 2600) {
    samples.push({ t: Date.now() - mutedAt, n: await packets() });
    await sleep(100);
  }
  let lastGrowth = 0;
  for (let i = 1; i < samples.length; i++) if (samples[i].n > samples[i - 1].n) lastGrowth = samples[i].t;
  log(`Jan’s audio at the host after the mute: ${samples.map((s) => `${s.t}ms:${s.n}`).join(' ')}`);
  assert.ok(lastGrowth <= 1000, `the host still received Jan's audio ${lastGrowth} ms after muting`);
  const silent = samples[samples.length - 1].n;

  await guest.locator('#ctl-ask-audio').waitFor(VISIBLE);
  assert.equal(await guest.locator('#ctl-mic').isVisible(), false, 'the unmute control gave way to "ask to speak"');
  assert.equal(await guest.locator('.tile-self .tile-mic-off').isVisible(), true, 'Jan’s own tile shows the microphone off');
  assert.equal(await tileOf(host, 'Jan').locator('.tile-mic-off').isVisible(), true, 'the host shows Jan muted');
  log('Jan’s page shows muted, with "Ask to speak" instead of the microphone toggle');

  await guest.keyboard.press('h');
  await tileOf(host, 'Jan').locator('.tile-hand').waitFor(VISIBLE);
  await guest.click('#ctl-ask-audio');
  const request = host.locator('.notice-card', { hasText: 'Jan' });
  await request.waitFor(VISIBLE);
  log('Jan raised a hand and asked to speak; the host sees the request');

  // The moderator's view, for a human look.
  await host.click('#ctl-participants');
  await host.locator('#participant-list .plist-item', { hasText: 'Jan' }).locator('.plist-hand').waitFor(VISIBLE);
  await host.screenshot({ path: path.join(SCREENSHOTS, 'zaal-moderator-1280x800.png') });
  await host.setViewportSize({ width: 390, height: 844 });
  await sleep(300);
  await host.screenshot({ path: path.join(SCREENSHOTS, 'zaal-moderator-390x844.png') });
  await host.click('#ctl-moderation');
  await sleep(300);
  await host.screenshot({ path: path.join(SCREENSHOTS, 'zaal-moderation-panel-390x844.png') });
  await host.click('#ctl-moderation');
  log(`screenshots of the moderator's view in ${SCREENSHOTS}`);

  await request.getByRole('button', { name: 'Allow Jan to speak' }).click();
  await guest.locator('#ctl-mic').waitFor(VISIBLE);
  await guest.click('#ctl-mic');
  await guest.locator('#ctl-mic[aria-pressed="true"]').waitFor(VISIBLE);
  await waitUntil('the host to receive Jan’s audio again', async () => {
    const n = await packets();
    return { ok: n > silent + 10, state: { silent, now: n } };
  }, { timeout: 15000 });
  await request.waitFor({ state: 'detached', timeout: 15000 });
  log('the host allowed it, Jan unmuted, and the host hears Jan again');
});

test('C: the host’s start page lists rooms, ends a meeting and deletes a room', { timeout: 90000 }, async () => {
  const guest = await enter('rooms-test', 'Host tab', { host: true, camera: 'off', mic: 'off' });
  await guest.locator('#screen-meeting').waitFor(VISIBLE);

  const { page } = await browser.open('Start page', { viewport: { width: 1280, height: 800 } });
  await page.goto(`${zaal.base}/`);
  await page.fill('#login-username', HOST_USER);
  await page.fill('#login-password', HOST_PASSWORD);
  await page.click('#login-form button[type="submit"]');
  const row = (room) => page.locator(`#rooms-list li[data-room="${room}"]`);
  await row('rooms-test').locator('.badge-live').waitFor(VISIBLE);
  await row('spare-room').waitFor(VISIBLE);
  log(`the start page lists: ${(await page.locator('#rooms-list .room-item-name').allTextContents()).join(', ')}`);

  await page.getByRole('button', { name: 'End meeting in rooms-test' }).click();
  await page.locator('dialog').getByRole('button', { name: 'End meeting' }).click();
  await guest.locator('#screen-error[data-code="conference-ended"]').waitFor(VISIBLE);
  await row('rooms-test').locator('.badge-live').waitFor({ state: 'detached', timeout: 15000 });
  log('"End meeting" ended the meeting in rooms-test: the host tab shows the ended screen');

  await page.getByRole('button', { name: 'Delete room spare-room' }).click();
  await page.locator('dialog').getByRole('button', { name: 'Delete room' }).click();
  await row('spare-room').waitFor({ state: 'detached', timeout: 15000 });
  assert.equal((await fetch(`${zaal.base}/api/rooms/spare-room`)).status, 404, 'the deleted room still exists');
  await page.screenshot({ path: path.join(SCREENSHOTS, 'zaal-start-page-host-1280x800.png'), fullPage: true });
  log('"Delete room" deleted spare-room');
});

test('no uncaught script errors, no Content-Security-Policy violations, no request elsewhere', () => {
  assert.deepEqual(browser.scriptProblems, []);
  assert.deepEqual(browser.foreignRequests, []);
});
