import assert from "node:assert/strict";
import {
  generateKeyLine,
  KeyFileError,
  type KeyFileSystem,
  loadKeyFile,
  parseKeyFile,
} from "../../lib/secure/keyfile.ts";

const A = "0123456789abcdef".repeat(4);
const B = "fedcba9876543210".repeat(4);

const fs = (mode: number, text: string): KeyFileSystem => ({ mode: () => mode, read: () => text });

Deno.test("parseKeyFile reads keys in order, skipping comments and blank lines", () => {
  const keys = parseKeyFile(
    `# the group's keys\n\n  ${B}  # new, seals\n${A.toUpperCase()}\n`,
    "k",
  );
  assert.deepEqual(keys.map((k) => k.id), [parseKeyFile(B, "k")[0].id, parseKeyFile(A, "k")[0].id]);
  assert.notEqual(keys[0].id, keys[1].id);
});

/** Lines that are not keys: each must be refused with the line number and without its text. */
const BAD_LINES: [string, string, RegExp][] = [
  ["one digit short", A.slice(1), /line 2: not a key: .* \(found 63 characters\)/],
  ["one digit long", A + "0", /line 2: not a key: .* \(found 65 characters\)/],
  ["not hex", A.slice(0, 63) + "g", /line 2: not a key: .*, not all hex digits\)/],
  ["two keys on a line", `${A} ${B}`, /line 2: not a key/],
];
for (const [name, line, error] of BAD_LINES) {
  Deno.test(`parseKeyFile refuses a line ${name}, and its error does not echo the line`, () => {
    assert.throws(() => parseKeyFile(`# comment\n${line}\n`, "/etc/joold/sync.key"), (e) => {
      assert.ok(e instanceof KeyFileError);
      assert.match(e.message, /^\/etc\/joold\/sync.key: /);
      assert.match(e.message, error);
      for (let i = 0; i + 8 <= line.length; i++) {
        assert.ok(!e.message.includes(line.slice(i, i + 8)), "the message echoes the line");
      }
      return true;
    });
  });
}

Deno.test("parseKeyFile refuses a file without a key, and a key given twice", () => {
  assert.throws(() => parseKeyFile("# nothing yet\n", "k"), /k: no key in the file: .*--keygen/);
  assert.throws(() => parseKeyFile(`${A}\n${A}\n`, "k"), /k: line 2: the same key as an earlier/);
});

for (const mode of [0o640, 0o604, 0o620, 0o602, 0o601, 0o644, 0o666]) {
  Deno.test(`loadKeyFile refuses mode ${mode.toString(8)} with the fix, before reading it`, () => {
    let read = false;
    const probe: KeyFileSystem = { mode: () => mode, read: () => (read = true, A) };
    assert.throws(
      () => loadKeyFile("/etc/joold/sync.key", probe),
      new KeyFileError(
        "/etc/joold/sync.key",
        `mode 0${
          mode.toString(8)
        } lets group or others access the key: chmod 600 /etc/joold/sync.key`,
      ),
    );
    assert.equal(read, false);
  });
}

Deno.test("loadKeyFile takes modes 600 and 400", () => {
  assert.equal(loadKeyFile("k", fs(0o600, A)).length, 1);
  assert.equal(loadKeyFile("k", fs(0o400, `${A}\n${B}`)).length, 2);
});

Deno.test("loadKeyFile on real files: missing, too open, good", () => {
  const dir = Deno.makeTempDirSync();
  try {
    assert.throws(() => loadKeyFile(`${dir}/none`), /none: no such key file: .*--keygen/);
    Deno.writeTextFileSync(`${dir}/k`, A + "\n", { mode: 0o600 });
    Deno.chmodSync(`${dir}/k`, 0o644);
    assert.throws(() => loadKeyFile(`${dir}/k`), /mode 0644 .*chmod 600/);
    Deno.chmodSync(`${dir}/k`, 0o600);
    assert.equal(loadKeyFile(`${dir}/k`)[0].id, parseKeyFile(A, "k")[0].id);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a SyncKey shows its id only: String, JSON, Deno.inspect", () => {
  const [key] = parseKeyFile(A, "k");
  for (const text of [String(key), JSON.stringify(key), Deno.inspect(key), Deno.inspect({ key })]) {
    assert.match(text, new RegExp(key.idHex));
    assert.ok(!text.includes(A.slice(0, 8)), text);
    assert.ok(!/\d+, \d+, \d+/.test(text), `bytes in ${text}`);
  }
});

Deno.test("generateKeyLine draws 256 random bits as 64 hex digits", () => {
  const lines = new Set(Array.from({ length: 100 }, () => generateKeyLine()));
  assert.equal(lines.size, 100);
  for (const line of lines) assert.match(line, /^[0-9a-f]{64}$/);
  assert.equal(generateKeyLine((b) => b.fill(0xab)), "ab".repeat(32));
});
