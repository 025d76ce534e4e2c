// The reactor's CPU cost and wake-up latency per datagram, with and without the synchronous
// linger (lib/reactor.ts): another process sends COUNT timestamped datagrams at RATE/s to a UDP
// socket on 127.0.0.1 that a Reactor drains; prints this process's CPU time (user + system, from
// /proc/self/stat) and the send -> handler latency. Not a `deno bench` file: the sender must be
// another process, or it could not run while the reactor waits synchronously.
//   deno run -A bench/reactor_cpu.ts [LINGER_MS=250, the daemon's] [RATE=2000] [COUNT=10000]
import { LINGER_MS, Reactor } from "../lib/reactor.ts";
import { close, recv } from "../ffi/libc.ts";
import { loopbackSocket } from "../tests/_udp.ts";

const lingerMs = Number(Deno.args[0] ?? LINGER_MS);
const rate = Number(Deno.args[1] ?? 2000);
const count = Number(Deno.args[2] ?? 10000);

const socket = loopbackSocket();
const reactor = new Reactor({ lingerMs });
const buffer = new Uint8Array(256);
const view = new DataView(buffer.buffer);
const latencies: number[] = [];
reactor.add(socket.fd, () => {
  while (recv(socket.fd, buffer) >= 0) {
    latencies.push((performance.timeOrigin + performance.now()) * 1000 - view.getFloat64(0, true));
    if (latencies.length === count) reactor.stop();
  }
});

const libc = new URL("../ffi/libc.ts", import.meta.url).href;
const sockaddr = new URL("../ffi/sockaddr.ts", import.meta.url).href;
const sender = new Deno.Command(Deno.execPath(), {
  args: [
    "eval",
    "--no-prompt",
    `import { AF_INET, SOCK_DGRAM, sendto, socket } from "${libc}";
     import { sockaddrIn } from "${sockaddr}";
     const fd = socket(AF_INET, SOCK_DGRAM, 0);
     const to = sockaddrIn(Uint8Array.of(127, 0, 0, 1), ${socket.port});
     const message = new Uint8Array(64);
     const view = new DataView(message.buffer);
     const t0 = performance.now();
     for (let i = 0; i < ${count}; i++) {
       const due = t0 + (i * 1000) / ${rate};
       const wait = due - performance.now();
       if (wait >= 1) await new Promise((r) => setTimeout(r, wait));
       view.setFloat64(0, (performance.timeOrigin + performance.now()) * 1000, true);
       sendto(fd, message, to);
     }`,
  ],
}).spawn();

const cpu = () => {
  const f = Deno.readTextFileSync("/proc/self/stat").split(") ")[1].split(" ");
  return (Number(f[11]) + Number(f[12])) * 10; // utime + stime, in ms at 100 ticks/s
};
const cpu0 = cpu();
await reactor.run();
const cpuMs = cpu() - cpu0;
await sender.status;
close(socket.fd);
latencies.sort((a, b) => a - b);
const at = (p: number) => latencies[Math.min(count - 1, Math.ceil(p * count) - 1)].toFixed(0);
console.log(
  `linger ${lingerMs} ms, ${count} datagrams at ${rate}/s: receiver CPU ${cpuMs} ms (${
    (cpuMs * 1000 / count).toFixed(1)
  } us each), ${reactor.wakeups} wake-ups (${reactor.syncWakeups} synchronous), latency p50 ${
    at(0.5)
  } us, p99 ${at(0.99)} us, max ${at(1)} us`,
);
