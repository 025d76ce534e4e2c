/**
 * The sealing thread: a keyed daemon's envelopes sealed and sent off its main loop.
 *
 * Why: the kernel sends its next batch only once the daemon ACKed the last one, and on Jool
 * 4.1.13 it builds that batch inside the ACK's `sendmsg`, so a keyed daemon's main loop (receive,
 * ACK, join, seal, send) is longer than a plain one's by the seal, and the kernel waits for all of
 * it (BENCHMARKS.md, "The sealing thread"). With this thread the main loop writes each envelope's
 * header and payload into a shared staging buffer and goes back to the kernel socket; the thread
 * seals them in place (libcrypto's ChaCha20-Poly1305, its own context) and sends them
 * (`sendto` to every destination of the plain channel, in the order they were staged: the
 * sequence numbers reach the peers in order, as from the main loop).
 *
 * What stays on the main loop: the sequence numbers, the resend ring (it keeps the envelopes
 * unsealed; a resend is sealed again, here, into the same bytes under the same key), every
 * receive, the counters (the thread's sends are added to them at each timer run of the secure
 * channel and at close: they lag by at most a quarter second). A send the thread cannot make
 * (the socket's buffer full for {@linkcode SEND_PATIENCE_MS}, or another errno) is counted as a
 * send error, and the peers' NACKs recover it from the ring: the daemon core's retry queue is the
 * main loop's.
 *
 * The thread's code is {@linkcode sealerMain}, run from a `blob:` URL (no file to read: the
 * service may read only /etc/joold); it opens the same libc and libcrypto the main thread was
 * granted. Only a keyed daemon whose cipher is libcrypto, whose plain channel is a socket, and
 * that runs with `JOOLD_SEAL_THREAD=1` starts it (lib/start.ts): the lab measured the bulk resync no
 * faster with it than on the main loop, so it is a benchmark knob, not the default.
 *
 * @module
 */

import type { DestinationStats } from "../net/multicast.ts";
import type { Counters } from "../counters.ts";
import { sealingSubkey } from "./envelope.ts";
import { SYMBOLS as LIBC_SYMBOLS } from "../../ffi/libc.ts";
import { SYMBOLS as LIBCRYPTO_SYMBOLS } from "../../ffi/libcrypto.ts";
import type { SyncKey } from "./keyfile.ts";

/** Envelopes staged and not yet sent at most (a power of two). */
export const SEALER_QUEUE = 256;
/** The staging buffer, bytes: 256 envelopes of Jool's default 1452-byte payload, and more. */
export const SEALER_STAGING = 512 * 1024;
/** How long the thread retries a send while the socket's buffer is full, ms. */
export const SEND_PATIENCE_MS = 200;
/** How long the main loop waits for room in the staging buffer before it gives the thread up, ms. */
export const STAGING_PATIENCE_MS = 2000;

/** Where a sealing thread sends: the plain channel's socket and destinations. */
export interface SendPlan {
  /** The socket (the plain channel's: sends go out from its address). */
  readonly fd: number;
  /** Each destination's `struct sockaddr` and its counters. */
  readonly targets: readonly { readonly sockaddr: Uint8Array; readonly stats: DestinationStats }[];
}

/** What a sealing thread is started with. */
export interface SealerParts {
  /** libc's path (ffi/libc.ts libcPath), granted. */
  readonly libc: string;
  /** libcrypto's path (ffi/libcrypto.ts), granted. */
  readonly libcrypto: string;
  /** The socket and destinations. */
  readonly plan: SendPlan;
  /** The daemon's counters: the thread's sends are added to them by {@linkcode Sealer.fold}. */
  readonly counters: Counters;
  /** This daemon's sender identity (the subkeys are derived for it). */
  readonly sender: Uint8Array;
}

// The queue's Int32 words: the jobs posted (main), the jobs done (thread), stop (main).
const HEAD = 0, TAIL = 1, STOP = 2, FAILED = 3, JOBS = 8;
/** Int32 words per job: staging offset, length, key slot. */
const JOB = 3;
/** Subkeys the thread holds (32 bytes each); a key file has a few keys. */
const KEY_SLOTS = 8;
/** Float64 counters per destination: datagrams sent, bytes sent, send errors. */
const COUNTS = 3;
/** The libc calls the thread makes (ffi/libc.ts's own definitions). */
const THREAD_LIBC = {
  sendto: LIBC_SYMBOLS.sendto,
  poll: LIBC_SYMBOLS.poll,
  __errno_location: LIBC_SYMBOLS.__errno_location,
};

/** The main loop's side of a sealing thread. */
export class Sealer {
  readonly #worker: Worker;
  readonly #queue: Int32Array;
  readonly #staging: Uint8Array;
  readonly #keys: Uint8Array;
  readonly #counts: Float64Array;
  readonly #folded: Float64Array;
  readonly #plan: SendPlan;
  readonly #counters: Counters;
  readonly #sender: Uint8Array;
  readonly #slots = new Map<SyncKey, number>();
  #head = 0;
  #write = 0;
  #closed = false;

  private constructor(parts: SealerParts, worker: Worker) {
    this.#worker = worker;
    this.#plan = parts.plan;
    this.#counters = parts.counters;
    this.#sender = parts.sender.slice();
    this.#queue = new Int32Array(new SharedArrayBuffer(4 * (JOBS + JOB * SEALER_QUEUE)));
    this.#staging = new Uint8Array(new SharedArrayBuffer(SEALER_STAGING));
    this.#keys = new Uint8Array(new SharedArrayBuffer(32 * KEY_SLOTS));
    const n = COUNTS * parts.plan.targets.length;
    this.#counts = new Float64Array(new SharedArrayBuffer(8 * Math.max(n, 1)));
    this.#folded = new Float64Array(n);
  }

  /**
   * Starts the thread and waits until it has opened its libraries.
   *
   * @param parts the libraries, the socket and destinations, the counters, the sender
   * @returns the sealer; or why there is none (the thread could not start or open them)
   */
  static async start(parts: SealerParts): Promise<Sealer | { unavailable: string }> {
    const source = `(${sealerMain.toString()})();`;
    const url = URL.createObjectURL(new Blob([source], { type: "application/javascript" }));
    let worker: Worker;
    try {
      worker = new Worker(url, { type: "module", name: "joold-sealer" });
    } catch (error) {
      URL.revokeObjectURL(url);
      return { unavailable: (error as Error).message.split("\n")[0] };
    }
    const sealer = new Sealer(parts, worker);
    const answer = await new Promise<string>((resolve) => {
      worker.onmessage = (event: MessageEvent) => resolve(String(event.data));
      worker.onerror = (event: ErrorEvent) => {
        event.preventDefault();
        resolve(`failed: ${event.message}`);
      };
      worker.postMessage({
        libc: parts.libc,
        libcrypto: parts.libcrypto,
        fd: parts.plan.fd,
        targets: parts.plan.targets.map((t) => t.sockaddr.slice()),
        queue: sealer.#queue.buffer,
        staging: sealer.#staging.buffer,
        keys: sealer.#keys.buffer,
        counts: sealer.#counts.buffer,
        capacity: SEALER_QUEUE,
        libcSymbols: THREAD_LIBC,
        libcryptoSymbols: LIBCRYPTO_SYMBOLS,
      });
    });
    URL.revokeObjectURL(url);
    if (answer !== "ready") {
      worker.terminate();
      return { unavailable: answer };
    }
    worker.onmessage = null;
    return sealer;
  }

  /** Whether the thread is gone (it failed, or the staging buffer stayed full): seal inline. */
  get failed(): boolean {
    return this.#closed || Atomics.load(this.#queue, FAILED) !== 0;
  }

  /**
   * Stages an unsealed envelope (its header written, the payload after it, 16
   * bytes of room at the end) to be sealed under `key` and sent. Its key id is `key`'s.
   *
   * @param unsealed the envelope's bytes (copied: the caller may reuse them at once)
   * @param key the key it is sealed with
   * @returns false when the thread cannot take it (failed: seal it inline)
   */
  seal(unsealed: Uint8Array, key: SyncKey): boolean {
    if (this.failed) return false;
    const length = unsealed.length;
    const slot = this.#slot(key);
    const at = this.#room(length);
    if (slot < 0 || at < 0) return false;
    const staging = this.#staging;
    staging.set(unsealed, at);
    staging[at + 4] = key.id >>> 24;
    staging[at + 5] = key.id >>> 16;
    staging[at + 6] = key.id >>> 8;
    staging[at + 7] = key.id;
    const q = this.#queue;
    const job = JOBS + JOB * (this.#head & (SEALER_QUEUE - 1));
    q[job] = at;
    q[job + 1] = length;
    q[job + 2] = slot;
    this.#head = (this.#head + 1) | 0;
    this.#write = at + length;
    Atomics.store(q, HEAD, this.#head);
    Atomics.notify(q, HEAD);
    return true;
  }

  /** Envelopes staged and not yet sent. */
  get pending(): number {
    return (this.#head - Atomics.load(this.#queue, TAIL)) | 0;
  }

  /**
   * Waits until the thread has sent everything staged (at most `ms`).
   *
   * @param ms the patience
   * @returns whether it did
   */
  drain(ms: number): boolean {
    const deadline = performance.now() + ms;
    for (;;) {
      const tail = Atomics.load(this.#queue, TAIL);
      if (tail === this.#head) return true;
      const left = deadline - performance.now();
      if (left <= 0 || Atomics.load(this.#queue, FAILED) !== 0) return false;
      Atomics.wait(this.#queue, TAIL, tail, Math.min(left, 50));
    }
  }

  /** Adds the thread's sends since the last call to the counters and destination stats. */
  fold(): void {
    const counts = this.#counts, folded = this.#folded, c = this.#counters;
    const targets = this.#plan.targets;
    for (let i = 0; i < targets.length; i++) {
      const k = COUNTS * i;
      const sent = counts[k] - folded[k];
      const bytes = counts[k + 1] - folded[k + 1];
      const errors = counts[k + 2] - folded[k + 2];
      folded[k] += sent;
      folded[k + 1] += bytes;
      folded[k + 2] += errors;
      const stats = targets[i].stats;
      c.netDatagramsSent += sent;
      c.netBytesSent += bytes;
      c.netSendErrors += errors;
      stats.datagramsSent += sent;
      stats.bytesSent += bytes;
      stats.sendErrors += errors;
    }
  }

  /** Sends what is staged (within a second), stops the thread and folds its counts. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.drain(1000);
    this.#closed = true;
    Atomics.store(this.#queue, STOP, 1);
    Atomics.notify(this.#queue, HEAD);
    this.#worker.terminate();
    this.fold();
  }

  /** The key slot holding `key`'s subkey for this sender; -1 when the thread is stuck. */
  #slot(key: SyncKey): number {
    const known = this.#slots.get(key);
    if (known !== undefined) return known;
    if (this.#slots.size >= KEY_SLOTS) {
      // Keys were replaced often (SIGHUP): once nothing staged uses a slot, start afresh.
      if (!this.drain(STAGING_PATIENCE_MS)) return this.#fail();
      this.#slots.clear();
    }
    const slot = this.#slots.size;
    this.#keys.set(sealingSubkey(key, this.#sender), 32 * slot);
    this.#slots.set(key, slot);
    return slot;
  }

  /** Where `length` bytes go in the staging buffer (waiting for the thread); -1: stuck. */
  #room(length: number): number {
    const q = this.#queue, size = this.#staging.length;
    if (length >= size / 2) return this.#fail();
    const deadline = performance.now() + STAGING_PATIENCE_MS;
    for (;;) {
      const tail = Atomics.load(q, TAIL);
      const pending = (this.#head - tail) | 0;
      if (pending === 0) return 0;
      if (pending < SEALER_QUEUE) {
        const oldest = q[JOBS + JOB * (tail & (SEALER_QUEUE - 1))];
        const write = this.#write;
        // Held: [oldest, write), or wrapped: [oldest, size) and [0, write). Never fill up to
        // `oldest` exactly (full and empty would look alike).
        if (write > oldest) {
          if (size - write >= length) return write;
          if (oldest > length) return 0;
        } else if (oldest - write > length) return write;
      }
      const left = deadline - performance.now();
      if (left <= 0 || Atomics.load(q, FAILED) !== 0) return this.#fail();
      Atomics.wait(q, TAIL, tail, Math.min(left, 50));
    }
  }

  #fail(): number {
    Atomics.store(this.#queue, FAILED, 1);
    return -1;
  }
}

/**
 * The thread's program (run as the source of a `blob:` worker: it may use nothing from outside
 * itself). It opens libc and libcrypto, answers "ready", then seals and sends each staged
 * envelope in order until told to stop.
 */
function sealerMain(): void {
  const scope = globalThis as unknown as {
    onmessage: ((event: MessageEvent) => void) | null;
    postMessage(message: unknown): void;
  };
  scope.onmessage = (event: MessageEvent) => {
    scope.onmessage = null;
    const init = event.data as {
      libc: string;
      libcrypto: string;
      fd: number;
      targets: Uint8Array[];
      queue: SharedArrayBuffer;
      staging: SharedArrayBuffer;
      keys: SharedArrayBuffer;
      counts: SharedArrayBuffer;
      capacity: number;
      libcSymbols: typeof THREAD_LIBC;
      libcryptoSymbols: typeof LIBCRYPTO_SYMBOLS;
    };
    const HEAD = 0, TAIL = 1, STOP = 2, FAILED = 3, JOBS = 8, JOB = 3, COUNTS = 3;
    const HEADER = 40, TAG = 16, GET_TAG = 0x10, POLLOUT = 4;
    const EINTR = 4, EAGAIN = 11, ENOBUFS = 105, PATIENCE_MS = 200;
    // The libraries' symbol tables are ffi/'s own, passed in the message (this code imports
    // nothing).
    const open = () => ({
      c: Deno.dlopen(init.libc, init.libcSymbols).symbols,
      k: Deno.dlopen(init.libcrypto, init.libcryptoSymbols).symbols,
    });
    let libs: ReturnType<typeof open>;
    try {
      libs = open();
    } catch (error) {
      scope.postMessage(`cannot open its libraries: ${(error as Error).message.split("\n")[0]}`);
      return;
    }
    const { c, k } = libs;
    const cipher = BigInt(
      k.EVP_CIPHER_fetch(0n, new TextEncoder().encode("ChaCha20-Poly1305\0"), 0n),
    );
    const ctx = BigInt(k.EVP_CIPHER_CTX_new());
    const none = new Uint8Array(0);
    if (cipher === 0n || ctx === 0n || k.EVP_CipherInit_ex(ctx, cipher, 0n, none, none, 1) !== 1) {
      scope.postMessage("libcrypto has no ChaCha20-Poly1305 context for it");
      return;
    }
    const q = new Int32Array(init.queue);
    const staging = new Uint8Array(init.staging);
    const keys = new Uint8Array(init.keys);
    const counts = new Float64Array(init.counts);
    const targets = init.targets;
    const mask = init.capacity - 1;
    const nonce = new Uint8Array(12);
    const outLength = new Int32Array(1);
    const pollFd = new Int32Array([init.fd, POLLOUT]);
    const errno = (): number => {
      const at = Deno.UnsafePointer.create(BigInt(c.__errno_location()));
      return at === null ? 0 : new Deno.UnsafePointerView(at).getInt32();
    };
    const seal = (at: number, length: number, slot: number): boolean => {
      const n = length - HEADER - TAG;
      const header = staging.subarray(at, at + HEADER);
      const body = staging.subarray(at + HEADER, at + HEADER + n);
      const tag = staging.subarray(at + HEADER + n, at + length);
      for (let i = 0; i < 8; i++) nonce[4 + i] = staging[at + 32 + i];
      return k.EVP_CipherInit_ex(
            ctx,
            0n,
            0n,
            keys.subarray(32 * slot, 32 * slot + 32),
            nonce,
            1,
          ) ===
          1 &&
        k.aad(ctx, 0n, outLength, header, HEADER) === 1 &&
        k.EVP_CipherUpdate(ctx, body, outLength, body, n) === 1 && outLength[0] === n &&
        k.EVP_CipherFinal_ex(ctx, tag, outLength) === 1 &&
        k.EVP_CIPHER_CTX_ctrl(ctx, GET_TAG, TAG, tag) === 1;
    };
    const send = (datagram: Uint8Array, i: number): void => {
      const to = targets[i];
      const deadline = performance.now() + PATIENCE_MS;
      for (;;) {
        const sent = Number(c.sendto(init.fd, datagram, BigInt(datagram.length), 0, to, to.length));
        if (sent >= 0) {
          counts[COUNTS * i]++;
          counts[COUNTS * i + 1] += sent;
          return;
        }
        const e = errno();
        if (e === EINTR) continue;
        if ((e === EAGAIN || e === ENOBUFS) && performance.now() < deadline) {
          c.poll(pollFd, 1n, e === ENOBUFS ? 5 : 20); // ENOBUFS: the device queue, not POLLOUT
          continue;
        }
        counts[COUNTS * i + 2]++;
        return;
      }
    };
    scope.postMessage("ready");
    let tail = 0;
    for (;;) {
      const head = Atomics.load(q, HEAD);
      if (head === tail) {
        if (Atomics.load(q, STOP) !== 0) return;
        Atomics.wait(q, HEAD, tail, 1000);
        continue;
      }
      while (tail !== head) {
        const job = JOBS + JOB * (tail & mask);
        const at = q[job], length = q[job + 1], slot = q[job + 2];
        if (!seal(at, length, slot)) {
          Atomics.store(q, FAILED, 1); // libcrypto refused: the main loop seals inline from now
          for (let i = 0; i < targets.length; i++) counts[COUNTS * i + 2]++;
        } else {
          const datagram = staging.subarray(at, at + length);
          for (let i = 0; i < targets.length; i++) send(datagram, i);
        }
        tail = (tail + 1) | 0;
        Atomics.store(q, TAIL, tail);
        Atomics.notify(q, TAIL);
      }
    }
  };
}
