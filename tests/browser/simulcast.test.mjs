// Browser test of simulcast: four Chromium pages in one room, each publishing
// its camera as three simulcast layers, each decoding the other three; the
// layer a receiver gets follows the size of its tiles; and layers no receiver
// takes are paused at the publisher.
//
//   node --test tests/browser/simulcast.test.mjs
//
// Environment and set-up: as zaal.test.mjs (see harness.mjs); run it in a
// network namespace that has only `lo`.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Browser, Zaal, log, waitForMedia, waitUntil } from './harness.mjs';

const ROOM = 'simulcast-test';
const HOST_USER = 'teacher';
const HOST_PASSWORD = 'correct horse battery';
const NAMES = ['Anna', 'Bram', 'Cato', 'Daan'];

let zaal = null;
let browser = null;
let session = null;
const pages = new Map();

// Large enough that the others' tiles are taller than the middle layer, so
// that every publisher is asked for all three.
const LARGE = { width: 1280, height: 800 };
const SMALL = { width: 640, height: 480 };

async function enter(name, { host = false } = {}) {
  const { page } = await browser.open(name, { session: host ? session : null, viewport: LARGE });
  await page.goto(`${zaal.base}/${ROOM}#name=${encodeURIComponent(name)}&autojoin=1&camera=on&mic=on`);
  log(`${name} opened ${ROOM}${host ? ' as the host' : ''}`);
  return page;
}

/** The page's outbound camera layers: rid → {active, bytesSent, frameHeight}. */
function outboundLayers(page) {
  return page.evaluate(async () => {
    const pc = (window.__pcs || []).filter((p) => p.connectionState !== 'closed').pop();
    const layers = {};
    if (!pc) return layers;
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'video' && s.rid) {
        layers[s.rid] = {
          active: s.active !== false,
          bytesSent: s.bytesSent || 0,
          frameHeight: s.frameHeight || 0,
          limitation: s.qualityLimitationReason,
        };
      }
      if (s.type === 'candidate-pair' && s.nominated) layers.uplinkEstimate = s.availableOutgoingBitrate;
    });
    return layers;
  });
}

/** The frame heights the page decodes, one per inbound video stream. */
function inboundHeights(page) {
  return page.evaluate(async () => {
    const pc = (window.__pcs || []).filter((p) => p.connectionState !== 'closed').pop();
    const heights = [];
    if (!pc) return heights;
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video' && (s.framesDecoded || 0) > 0) heights.push(s.frameHeight || 0);
    });
    return heights;
  });
}

before(async () => {
  zaal = await Zaal.start({ hosts: { [HOST_USER]: HOST_PASSWORD } });
  session = await zaal.login(HOST_USER, HOST_PASSWORD);
  await zaal.createRoom(session, ROOM);
  browser = await Browser.launch(zaal.base);
}, { timeout: 120000 });

after(async () => {
  if (browser) await browser.close();
  if (zaal) await zaal.stop();
});

test('four pages publish three simulcast layers each and decode one another', { timeout: 150000 }, async () => {
  pages.set(NAMES[0], await enter(NAMES[0], { host: true }));
  for (const name of NAMES.slice(1)) pages.set(name, await enter(name));
  for (const name of NAMES) await waitForMedia(name, pages.get(name), NAMES.length - 1, 60000);

  // Every publisher sends q, h and f, all active and all carrying data, the
  // larger layers taller than the smaller.
  for (const name of NAMES) {
    const page = pages.get(name);
    const before = await outboundLayers(page);
    const layers = await waitUntil(`${name} to send three active layers`, async () => {
      const now = await outboundLayers(page);
      const rids = ['q', 'h', 'f'];
      const flowing = rids.every((r) => now[r] && now[r].active && now[r].bytesSent > ((before[r] || {}).bytesSent || 0));
      return { ok: flowing, state: now };
    }, { timeout: 30000 });
    log(`${name} sends ${Object.entries(layers).filter(([rid]) => rid.length === 1).map(([rid, l]) => `${rid}: ${l.frameHeight}p ${l.bytesSent} B`).join(', ')}`);
    assert.deepEqual(['f', 'h', 'q'].filter((r) => layers[r]), ['f', 'h', 'q']);
    assert.ok(layers.q.frameHeight < layers.h.frameHeight && layers.h.frameHeight < layers.f.frameHeight, JSON.stringify(layers));
  }

  // And every receiver keeps decoding the other three.
  for (const name of NAMES) {
    const page = pages.get(name);
    const heights = await inboundHeights(page);
    log(`${name} decodes ${heights.length} videos at ${heights.join(', ')} lines`);
    assert.equal(heights.length, NAMES.length - 1, `${name} decodes ${heights.length} videos`);
  }
});

test('the layer a receiver gets follows the size it shows the video at', { timeout: 60000 }, async () => {
  // In a 640×480 window the others' tiles are about 110 pixels tall: the
  // smallest layer (135 lines) fills them. A larger window makes larger tiles
  // and brings a larger layer; back to 640×480, the smallest again.
  const anna = pages.get(NAMES[0]);
  const tall = await waitUntil('Anna to decode the others at more than the smallest layer', async () => {
    const heights = await inboundHeights(anna);
    return { ok: heights.length === 3 && Math.max(...heights) > 135, state: heights };
  }, { timeout: 30000 });
  await anna.setViewportSize(SMALL);
  const small = await waitUntil('Anna to decode only small layers', async () => {
    const heights = await inboundHeights(anna);
    return { ok: heights.length === 3 && Math.max(...heights) <= 135, state: heights };
  }, { timeout: 30000 });
  log(`Anna decoded ${tall.join(', ')} lines in 1280×800 and ${small.join(', ')} in 640×480`);
});

test('layers no receiver takes are paused at the publisher, and resume when one does', { timeout: 90000 }, async () => {
  // Everyone in a small window: nobody shows anyone taller than the smallest
  // layer, so every publisher is told to send that one only.
  for (const name of NAMES) await pages.get(name).setViewportSize(SMALL);
  const onlySmallest = (layers) => layers.q && layers.q.active && layers.h && !layers.h.active && layers.f && !layers.f.active;
  for (const name of NAMES) {
    const page = pages.get(name);
    // Paused once the stats say inactive and two readings agree that h and f sent nothing more
    // (packets already queued, and stats a moment old, may still add a little).
    let previous = null;
    const layers = await waitUntil(`${name} to pause its two larger layers`, async () => {
      const now = await outboundLayers(page);
      const settled = previous && onlySmallest(now) && onlySmallest(previous)
        && now.h.bytesSent === previous.h.bytesSent && now.f.bytesSent === previous.f.bytesSent;
      previous = now;
      return { ok: settled, state: now };
    }, { timeout: 30000, interval: 500 });
    // Paused means no bytes: what h and f sent stays where it is.
    const later = await waitUntil(`${name}'s smallest layer to go on`, async () => {
      const now = await outboundLayers(page);
      return { ok: now.q.bytesSent > layers.q.bytesSent, state: now };
    }, { timeout: 10000 });
    assert.equal(later.h.bytesSent, layers.h.bytesSent, `${name}'s h layer still sends`);
    assert.equal(later.f.bytesSent, layers.f.bytesSent, `${name}'s f layer still sends`);
  }
  // The receivers still decode every camera, at the smallest layer.
  for (const name of NAMES) {
    await waitUntil(`${name} to decode three videos at the smallest layer`, async () => {
      const heights = await inboundHeights(pages.get(name));
      return { ok: heights.length === NAMES.length - 1 && Math.max(...heights) <= 135, state: heights };
    }, { timeout: 10000 });
  }
  log('every publisher sends only its smallest layer while all windows are small');

  // Anna enlarges her window: the others are asked for their larger layers
  // again, and she gets them.
  const anna = pages.get(NAMES[0]);
  await anna.setViewportSize(LARGE);
  for (const name of NAMES.slice(1)) {
    await waitUntil(`${name} to send its larger layers again`, async () => {
      const now = await outboundLayers(pages.get(name));
      return { ok: ['q', 'h', 'f'].every((r) => now[r] && now[r].active), state: now };
    }, { timeout: 20000 });
  }
  const heights = await waitUntil('Anna to decode the others above the smallest layer', async () => {
    const now = await inboundHeights(anna);
    return { ok: now.length === 3 && Math.min(...now) > 135, state: now };
  }, { timeout: 30000 });
  log(`after Anna enlarged her window she decodes ${heights.join(', ')} lines`);
});
