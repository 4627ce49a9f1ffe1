// A pupil's network for browser tests: a network namespace of the test's own, joined to the
// test's namespace by a veth pair, with nftables rules playing the school's firewall.
//
// The namespace is held open by a `sleep` started under `unshare --net`; a browser runs in it
// through a wrapper that enters it with `nsenter` (Playwright talks to the browser over a pipe,
// which crosses namespaces). Everything is removed when the holder ends: the veth pair goes
// with the namespace. Needs root (as the test command runs), `ip` and `nft`.

import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CHROMIUM, log } from './harness.mjs';

const sh = (args) => execFileSync(args[0], args.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] }).toString();

export class PupilNetwork {
  /**
   * `index` keeps concurrent networks apart (10.20X.0.0/24, interfaces zaal-sX/zaal-pX).
   * `firewall`: nft commands (without the leading `nft`) run in the pupil's namespace.
   */
  static async create({ index = 1, firewall = [] } = {}) {
    const net = new PupilNetwork();
    net.serverIp = `10.20${index}.0.1`;
    net.pupilIp = `10.20${index}.0.2`;
    net.holder = spawn('unshare', ['--net', 'sleep', '3600'], { stdio: 'ignore' });
    await new Promise((resolve, reject) => {
      net.holder.once('spawn', resolve);
      net.holder.once('error', reject);
    });
    // `unshare` execs `sleep` in the new namespace: wait until the pid's namespace differs.
    const own = fs.readlinkSync('/proc/self/ns/net');
    const deadline = Date.now() + 5000;
    while (fs.readlinkSync(`/proc/${net.holder.pid}/ns/net`) === own) {
      if (Date.now() > deadline) throw new Error('the pupil namespace did not appear');
      await new Promise((r) => setTimeout(r, 20));
    }
    net.nsPath = `/proc/${net.holder.pid}/ns/net`;
    const [outside, inside] = [`zaal-s${index}`, `zaal-p${index}`];
    sh(['ip', 'link', 'add', outside, 'type', 'veth', 'peer', 'name', inside, 'netns', String(net.holder.pid)]);
    // No IPv6 link-local addresses: one appearing a moment after the link comes up is a
    // network change to every browser already running, which aborts its page loads
    // (net::ERR_NETWORK_CHANGED).
    sh(['ip', 'link', 'set', 'dev', outside, 'addrgenmode', 'none']);
    net.exec(['ip', 'link', 'set', 'dev', inside, 'addrgenmode', 'none']);
    sh(['ip', 'addr', 'add', `${net.serverIp}/24`, 'dev', outside]);
    sh(['ip', 'link', 'set', outside, 'up']);
    net.exec(['ip', 'link', 'set', 'lo', 'up']);
    net.exec(['ip', 'addr', 'add', `${net.pupilIp}/24`, 'dev', inside]);
    net.exec(['ip', 'link', 'set', inside, 'up']);
    net.exec(['ip', 'route', 'add', 'default', 'via', net.serverIp]);
    net.block(firewall);
    net.wrapper = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'zaal-pupil-')), 'chromium');
    fs.writeFileSync(net.wrapper, `#!/bin/sh\nexec nsenter --net=${net.nsPath} ${CHROMIUM} "$@"\n`, { mode: 0o755 });
    return net;
  }

  /** Adds nft commands (without the leading `nft`) to the pupil's firewall. */
  block(rules) {
    for (const rule of rules) this.exec(['nft', ...rule.split(/\s+/)]);
    if (rules.length) log(`pupil network ${this.pupilIp}: ${rules.join('; ')}`);
  }

  /** Runs a command in the pupil's namespace; its output. */
  exec(args) {
    return sh(['nsenter', `--net=${this.nsPath}`, ...args]);
  }

  close() {
    if (this.holder && this.holder.exitCode === null) this.holder.kill('SIGKILL');
  }
}
