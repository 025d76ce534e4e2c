// Summarizes `deno task lab:bench` output (its BENCH lines, from a file or stdin) into the tables of
// BENCHMARKS.md: per flavour, kind and offered rate the loss of every repetition, the rate the
// load generator reached, the kernel->ACK latency seen by the kernel (median over repetitions of
// p50, p99, max), J's CPU over the step; then the highest offered rate at which every repetition
// of a kind was lossless, and the ratio ours / C.
//   deno run --allow-read lab/summarize.ts [FILE]
const text = Deno.args[0]
  ? Deno.readTextFileSync(Deno.args[0])
  : await new Response(Deno.stdin.readable).text();

interface Step {
  flavour: string;
  kind: string;
  rate: number;
  loss: number;
  reached: number;
  p50: number;
  p99: number;
  max: number;
  cpuMs: number;
}

const steps: Step[] = [];
const idles: string[] = [];
for (const line of text.split("\n")) {
  // run.ts prints `BENCH <flavour> ...`; the guest's own log has no flavour.
  const m = line.match(/^BENCH (?:(?!kind=|idle )(\S+) )?(.*)$/);
  if (!m) continue;
  const flavour = m[1] ?? "-";
  const fields = m[2];
  if (fields.startsWith("idle ")) {
    idles.push(`${flavour} ${fields}`);
    continue;
  }
  const get = (re: RegExp) => Number(fields.match(re)?.[1] ?? NaN);
  if (!/created=/.test(fields)) continue;
  steps.push({
    flavour,
    kind: fields.match(/kind=(\S+)/)![1],
    rate: get(/rate=(\d+)/),
    loss: get(/loss=(-?\d+)permille/),
    reached: get(/loadgen=\[[^\]]*: (\d+)\/s/),
    p50: get(/_nl_ack=\[[^\]]*p50=(\d+)us/),
    p99: get(/_nl_ack=\[[^\]]*p99=(\d+)us/),
    max: get(/_nl_ack=\[[^\]]*max=(\d+)us/),
    cpuMs: get(/J_step_cpu_ms=(\d+)/),
  });
}

const median = (xs: number[]) => {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const ms = (us: number) => Number.isNaN(us) ? "-" : (us / 1000).toFixed(1);
const groups = new Map<string, Step[]>();
for (const s of steps) {
  const key = `${s.flavour}\t${s.kind}\t${s.rate}`;
  groups.set(key, [...(groups.get(key) ?? []), s]);
}

console.log(
  "| flavour | kind | offered/s | reached/s | loss ‰ per rep | ACK p50 ms | p99 ms | max ms | J CPU ms |",
);
console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
for (const [key, g] of groups) {
  const [flavour, kind, rate] = key.split("\t");
  const cpuMs = median(g.map((s) => s.cpuMs));
  console.log(
    `| ${flavour} | ${kind} | ${rate} | ${g.map((s) => s.reached).join(", ")} | ${
      g.map((s) => s.loss).join(", ")
    } | ${ms(median(g.map((s) => s.p50)))} | ${ms(median(g.map((s) => s.p99)))} | ${
      ms(median(g.map((s) => s.max)))
    } | ${Number.isNaN(cpuMs) ? "-" : cpuMs} |`,
  );
}

// Highest offered rate at which every repetition was lossless (and every lower rate too).
const lossless = new Map<string, number>();
for (const flavour of new Set(steps.map((s) => s.flavour))) {
  for (const kind of new Set(steps.filter((s) => s.flavour === flavour).map((s) => s.kind))) {
    const rates = [
      ...new Set(
        steps.filter((s) => s.flavour === flavour && s.kind === kind)
          .map((s) => s.rate),
      ),
    ].sort((a, b) => a - b);
    let best = 0;
    for (const rate of rates) {
      const g = groups.get(`${flavour}\t${kind}\t${rate}`)!;
      if (g.every((s) => s.loss === 0)) best = rate;
      else break;
    }
    lossless.set(`${flavour}\t${kind}`, best);
    console.log(
      `\n${flavour} ${kind}: highest offered rate lossless in every repetition: ${best}/s`,
    );
  }
  const ours = lossless.get(`${flavour}\tours`);
  const c = lossless.get(`${flavour}\tc`);
  if (ours !== undefined && c !== undefined) {
    console.log(
      `${flavour} ratio ours/C: ${c > 0 ? (ours / c).toFixed(2) : "C never lossless"}`,
    );
  }
}
for (const idle of idles) console.log(idle);
