// Reactor round trip: datagrams/s through one poll loop (send on one UDP socket, drained by the
// reactor's handler on another). Run: deno task bench
import { close, recv, sendto } from "../ffi/libc.ts";
import { ERRNO } from "../ffi/errno.ts";
import { Reactor } from "../lib/reactor.ts";
import { loopbackSocket } from "../tests/_udp.ts";

const a = loopbackSocket();
const sender = loopbackSocket();
const reactor = new Reactor();
const running = reactor.run();
const buffer = new Uint8Array(2048);
let received = 0;
let wake: (() => void) | null = null;
reactor.add(a.fd, () => {
  while (recv(a.fd, buffer) !== -ERRNO.EAGAIN) received++;
  wake?.();
});
const payload = new Uint8Array(140);

Deno.bench("reactor: 100 datagrams sent and drained", { n: 200 }, async () => {
  const target = received + 100;
  for (let i = 0; i < 100; i++) sendto(sender.fd, payload, a.address);
  while (received < target) await new Promise<void>((r) => (wake = r));
});

Deno.bench("reactor: one datagram round trip (wake-up latency)", { n: 500 }, async () => {
  const target = received + 1;
  sendto(sender.fd, payload, a.address);
  while (received < target) await new Promise<void>((r) => (wake = r));
});

globalThis.addEventListener("unload", () => {
  // Unwatch before closing: a pending poll would otherwise report the closed fd (POLLNVAL).
  reactor.remove(a.fd);
  reactor.stop();
  void running;
  close(a.fd);
  close(sender.fd);
});
