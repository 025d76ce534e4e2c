/**
 * Lab guest tool: Prometheus scrapes, as Prometheus makes them.
 *
 * Usage (inside the daemon's namespace): deno run --allow-net=HOST:PORT lab/guest/scrape.ts URL
 * [EVERY_MS [COUNT_FILE]]. Without EVERY_MS: one scrape, the exposition printed as it came. With
 * it: a scrape every EVERY_MS until killed (guest/bench.sh's `ours-scraped`), one line per failed
 * scrape on stderr, nothing on stdout; with COUNT_FILE (and --allow-write to it), the scrapes
 * answered so far written there after each one (so that a benchmark knows how many it got).
 *
 * @module
 */

const [url, everyMs, countFile] = Deno.args;

async function scrape(): Promise<Uint8Array> {
  const response = await fetch(url, { headers: { accept: "text/plain" } });
  const body = new Uint8Array(await response.arrayBuffer());
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  const type = response.headers.get("content-type") ?? "";
  if (!type.startsWith("text/plain")) throw new Error(`${url}: content-type ${type}`);
  return body;
}

if (everyMs === undefined) {
  await Deno.stdout.write(await scrape());
} else {
  let answered = 0;
  for (let next = performance.now();; next += Number(everyMs)) {
    await scrape().then(
      () => countFile && Deno.writeTextFileSync(countFile, String(++answered)),
      (e) => console.error(`scrape failed: ${e.message}`),
    );
    await new Promise((r) =>
      setTimeout(r, Math.max(0, next + Number(everyMs) - performance.now()))
    );
  }
}
