/**
 * Secure sync in the real `cli.ts` process with the production permission flags: `--keygen`, a
 * key file refused at start-up (exit 2, one line naming the file and the fix, no key in it), and
 * SIGHUP re-reading the key file of a running daemon (in a network namespace, against an
 * in-process fake Jool kernel, with a keyed peer in another namespace).
 */
import assert from "node:assert/strict";
import { libcPath } from "../../ffi/libc.ts";
import type { NetConfig } from "../../lib/config/types.ts";
import { createCounters } from "../../lib/counters.ts";
import { batchPayload } from "../../lib/jool/message.ts";
import { COMMANDS_4_1 } from "../../lib/jool/version.ts";
import { silentLogger } from "../../lib/log.ts";
import { MulticastChannel } from "../../lib/net/multicast.ts";
import { Reactor } from "../../lib/reactor.ts";
import { SecureChannel } from "../../lib/secure/channel.ts";
import { parseKeyFile } from "../../lib/secure/keyfile.ts";
import { runCli, spawnDaemon, tempFiles } from "../_cli.ts";
import { FakeKernel } from "../_fake_kernel.ts";
import { fixture } from "../_fixtures.ts";
import { Netns, netnsUnavailable, veth } from "../_netns.ts";
import { waitFor } from "../_udp.ts";

const PRODUCTION = [`--allow-ffi=${libcPath()}`, "--allow-read"];
const K1 = "a1".repeat(32);
const K2 = "b2".repeat(32);

Deno.test("joold --keygen prints one new key line a key file takes", async () => {
  const runs = await Promise.all(
    [1, 2].map(() => runCli(["--keygen"], { permissions: PRODUCTION })),
  );
  for (const run of runs) {
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^[0-9a-f]{64}\n$/);
    assert.equal(run.stderr, "");
    assert.equal(parseKeyFile(run.stdout, "k").length, 1);
  }
  assert.notEqual(runs[0].stdout, runs[1].stdout);
});

Deno.test("a key file group or others can read is refused: exit 2, one line with the fix", async () => {
  const dir = tempFiles({ "sync.key": `${K1}\n` });
  Deno.chmodSync(`${dir}/sync.key`, 0o640);
  const run = await runCli(
    ["--check", "--net.mcast.addr=ff08::db8:64:64", `--net.key=${dir}/sync.key`],
    { permissions: PRODUCTION },
  );
  assert.equal(run.code, 2);
  assert.equal(
    run.stderr,
    `joold: command line: --net.key: ${dir}/sync.key: mode 0640 lets group or others access the key: chmod 600 ${dir}/sync.key\n`,
  );
});

Deno.test("a bad key file's error never echoes the key, from a flag or a network file", async () => {
  const typo = K1.slice(0, 40) + "zz" + K1.slice(42);
  const dir = tempFiles({
    "sync.key": `# ours\n${typo}\n`,
    "net.json": JSON.stringify({ "multicast address": "ff08::db8:64:64", "key file": "KEYFILE" }),
  });
  Deno.chmodSync(`${dir}/sync.key`, 0o600);
  Deno.writeTextFileSync(
    `${dir}/net.json`,
    Deno.readTextFileSync(`${dir}/net.json`).replace("KEYFILE", `${dir}/sync.key`),
  );
  for (
    const [args, where] of [
      [
        ["--check", "--net.mcast.addr=ff08::1", `--net.key=${dir}/sync.key`],
        "command line: --net.key",
      ],
      [["--check", `--net=${dir}/net.json`], `${dir}/net.json: key file`],
    ] as const
  ) {
    const run = await runCli(args, { permissions: PRODUCTION });
    assert.equal(run.code, 2);
    assert.equal(
      run.stderr,
      `joold: ${where}: ${dir}/sync.key: line 2: not a key: a key is 64 hex digits on a line of its own (found 64 characters, not all hex digits); make one with joold --keygen\n`,
    );
    assert.ok(!run.stderr.includes(typo.slice(0, 8)) && !run.stderr.includes(typo.slice(44)));
  }
});

const noNetns = netnsUnavailable();

Deno.test({
  name: `the daemon process re-reads its key file on SIGHUP: rotation without a restart${
    noNetns ? ` (skipped: ${noNetns})` : ""
  }`,
  ignore: noNetns !== null,
  async fn() {
    const a = new Netns("a");
    const b = new Netns("b");
    const reactor = new Reactor();
    const running = reactor.run();
    const kernel = a.enter(() => new FakeKernel("4.1.13"));
    const server = kernel.start();
    const dir = tempFiles({
      "modsocket.json": `{ "instance": "default" }`,
      "sync.key": `# the group's key\n${K1}\n`,
    });
    Deno.chmodSync(`${dir}/sync.key`, 0o600);
    const net: NetConfig = {
      multicastAddress: "ff08::db8:64:64",
      multicastPort: "6464",
      inInterface: "sync0",
      outInterface: "sync0",
      ttl: 1,
      reuseAddress: true,
    };
    Deno.writeTextFileSync(
      `${dir}/netsocket.json`,
      JSON.stringify({
        "multicast address": net.multicastAddress,
        "multicast port": net.multicastPort,
        "in interface": "sync0",
        "out interface": "sync0",
        "key file": `${dir}/sync.key`,
      }),
    );
    let child: Deno.ChildProcess | null = null;
    let peer: SecureChannel | null = null;
    try {
      veth(a, "sync0", ["2001:db8:ff08::4/64"], b, "sync0", ["2001:db8:ff08::5/64"]);
      // The peer already rotated: it seals with K2, and verifies K2 only.
      const counters = createCounters();
      const plain = b.enter(() => MulticastChannel.open(reactor, net));
      peer = new SecureChannel({
        inner: plain,
        keys: parseKeyFile(K2, "k"),
        counters,
        log: silentLogger,
      });
      const heard: Uint8Array[] = [];
      peer.onDatagram((p) => heard.push(p.slice()));
      const daemon = spawnDaemon(
        [`--net=${dir}/netsocket.json`, `--mod=${dir}/modsocket.json`],
        { kernel, read: [dir], netns: a.name },
      );
      child = daemon.child;
      const out = daemon.out;
      await waitFor(() => out.stderr.includes("joold: info: ready"), "ready", 20_000);
      const [k1, k2] = parseKeyFile(`${K1}\n${K2}`, "k");
      assert.match(
        out.stderr,
        new RegExp(
          `joold: info: secure sync: key file ${dir}/sync.key: sealing with key id ${k1.idHex}; sender [0-9a-f]{32}\\n`,
        ),
      );
      // Production's flags grant libc only: node:crypto seals, and the log says how to get more.
      assert.match(
        out.stderr,
        /joold: info: secure sync: ChaCha20-Poly1305 by node:crypto \(libcrypto: no --allow-ffi for libcrypto\); add \/lib\/(x86_64|aarch64)-linux-gnu\/libcrypto\.so\.3 to --allow-ffi for libcrypto's/,
      );
      const adds = () => kernel.requests(COMMANDS_4_1.JOOLD_ADD).map((r) => batchPayload(r.jool!));
      const session = fixture("4.1.13", "d-udp-payload-1session");

      // Before the reload: the peer's K2 envelopes are dropped, loudly.
      peer.send(session);
      await waitFor(() => out.stderr.includes("not in the key file"), "the unknown-key warning");
      assert.match(
        out.stderr,
        new RegExp(
          `sealed under key id ${k2.idHex}, not in the key file \\(its key ids: ${k1.idHex}\\)`,
        ),
      );
      assert.equal(adds().length, 0);

      // Step 1 of the rotation on this node: K2 added second. SIGHUP, no restart.
      Deno.writeTextFileSync(`${dir}/sync.key`, `${K1}\n${K2}  # new\n`);
      child.kill("SIGHUP");
      await waitFor(() => out.stderr.includes("SIGHUP: secure sync"), "the reload of the keys");
      assert.match(
        out.stderr,
        new RegExp(
          `SIGHUP: secure sync: key file .*: sealing with key id ${k1.idHex}, also verifying key ids ${k2.idHex}`,
        ),
      );
      peer.send(session);
      await waitFor(() => adds().length === 1, "the peer's session, verified under K2");
      assert.deepEqual(adds()[0], session);

      // Step 2: K2 first: what this daemon sends now opens with K2 alone.
      Deno.writeTextFileSync(`${dir}/sync.key`, `${K2}\n${K1}\n`);
      child.kill("SIGHUP");
      await waitFor(() => out.stderr.includes(`sealing with key id ${k2.idHex}`), "K2 first");
      const batch = fixture("4.1.13", "d-udp-payload-4sessions");
      kernel.sendBatch(kernel.received[0].message.pid, batch);
      await waitFor(() => heard.length === 1, "the daemon's batch on the peer");
      assert.deepEqual(heard[0], batch);

      // A key file made too open: the running keys stay, the daemon goes on.
      Deno.chmodSync(`${dir}/sync.key`, 0o644);
      child.kill("SIGHUP");
      await waitFor(() => out.stderr.includes("cannot reload"), "the refused reload");
      assert.match(
        out.stderr,
        /joold: error: SIGHUP: cannot reload, the running configuration stays: .*mode 0644 .*chmod 600/,
      );
      peer.send(session);
      await waitFor(() => adds().length === 2, "still verifying K2");

      child.kill("SIGTERM");
      assert.equal((await child.status).code, 0, out.stderr);
      child = null;
      await daemon.pumps;
      // One bulk-done received when the peer (no kernel: it answers an announce with one at once)
      // could be verified, K2 added, before this daemon stopped asking (sync-ready after 2.5 s).
      assert.match(
        out.stderr,
        /joold: info: secure sync: 2 envelopes accepted, 1 dropped \(0 did not verify, 0 replayed, 0 stale, 1 under an unknown key, 0 malformed, 0 plain\), 0 skipped over \(0 arrived late, 0 recovered by 0 NACKs, 0 given up\), 0 resent for peers \(0 NACKs served, 0 refused, 0 resyncs asked, 0 unrecoverable\), 0 bulks sent, [01] received\n/,
      );
      for (const k of [K1, K2]) assert.ok(!out.stderr.includes(k.slice(0, 8)), "a key in the log");
    } finally {
      if (child) {
        child.kill("SIGKILL");
        await child.status;
      }
      peer?.close();
      reactor.stop();
      await running;
      server.stop();
      kernel.close();
      a.dispose();
      b.dispose();
    }
  },
});
