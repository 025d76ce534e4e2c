/**
 * The Prometheus endpoint: `GET /metrics` over HTTP, served by Deno's own permission-checked
 * server (`Deno.serve`), which needs `--allow-net=HOST:PORT` and nothing wider. It runs on Deno's
 * event loop, beside the FFI reactor: a scrape is answered when the event loop gets its turn, at
 * most the reactor's linger (lib/reactor.ts, 250 ms) after traffic began. The body is built at
 * scrape time from the live counters (collect-on-scrape).
 *
 * With secure sync it also answers `GET /sync-ready`: 200 `ready` or 503 `not ready` (an exit
 * code for keepalived's track_script: `curl -fs http://127.0.0.1:PORT/sync-ready`). Over TCP, so
 * no spoofed source gets an answer: the query cannot reflect nor amplify.
 *
 * @module
 */

import type { MetricsConfig } from "../config/types.ts";
import { CONTENT_TYPE } from "./exposition.ts";

/** What a scrape answers with: the exposition text. */
export type Collector = () => Promise<string> | string;

/** Whether the daemon is sync-ready (secure sync); null: no key file, `/sync-ready` is 404. */
export type SyncReadySource = () => boolean | null;

/**
 * A source of the kernel's own JSTAT_JOOLD_* counters, by name; undefined when they cannot be had
 * (they are then absent from the scrape, not zero).
 */
export type KernelStatsSource = () => Promise<ReadonlyMap<string, bigint | number> | undefined>;

/** `--allow-net` is missing for the endpoint: names the exact flag. */
export class MetricsPermissionError extends Error {
  /**
   * Builds the error.
   *
   * @param config the endpoint
   * @param options error options (`cause`)
   */
  constructor(config: MetricsConfig, options?: ErrorOptions) {
    super(
      `--metrics=${config.permission}: joold may not listen there: add --allow-net=${config.permission} to deno run's permission flags`,
      options,
    );
    this.name = "MetricsPermissionError";
  }
}

/** The running endpoint. */
export class MetricsServer {
  /** The bound address (the port the kernel chose when 0 was asked, in tests). */
  readonly address: Deno.NetAddr;
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly #answered: { scrapes: number };
  #closed: Promise<void> | null = null;

  private constructor(server: Deno.HttpServer<Deno.NetAddr>, answered: { scrapes: number }) {
    this.#server = server;
    this.#answered = answered;
    this.address = server.addr;
  }

  /** Scrapes answered. */
  get scrapes(): number {
    return this.#answered.scrapes;
  }

  /**
   * Checks that `--allow-net=HOST:PORT` is granted, so that a daemon can refuse to start before
   * it opens anything.
   *
   * @param config the endpoint
   * @throws {MetricsPermissionError} when it is not
   */
  static checkPermission(config: MetricsConfig): void {
    const asked = Deno.permissions.querySync({ name: "net", host: config.permission });
    if (asked.state !== "granted") throw new MetricsPermissionError(config);
  }

  /**
   * Starts serving `/metrics`.
   *
   * @param config where to listen
   * @param collect builds each scrape's body
   * @param onError receives a failed collection (the scrape gets a 500)
   * @param syncReady whether the daemon is sync-ready, for `/sync-ready` (default: 404)
   * @returns the server, listening
   * @throws {MetricsPermissionError} when `--allow-net=HOST:PORT` is not granted
   * @throws {Error} when the address cannot be bound (in use, not local)
   * @example
   * ```ts ignore
   * const server = MetricsServer.open(config.metrics, () => formatMetrics(snapshot()));
   * await server.close();
   * ```
   */
  static open(
    config: MetricsConfig,
    collect: Collector,
    onError: (error: unknown) => void = () => {},
    syncReady: SyncReadySource = () => null,
  ): MetricsServer {
    MetricsServer.checkPermission(config);
    let server: Deno.HttpServer<Deno.NetAddr>;
    const answered = { scrapes: 0 };
    try {
      server = Deno.serve({
        hostname: config.hostname,
        port: config.port,
        onListen() {},
        // A failed handler must not print through Deno's default (lib/ never writes to stderr).
        onError(error) {
          onError(error);
          return new Response("internal error\n", { status: 500 });
        },
      }, async (request) => {
        const path = new URL(request.url).pathname;
        const ready = path === "/sync-ready" ? syncReady() : null;
        if (ready !== null && (request.method === "GET" || request.method === "HEAD")) {
          return new Response(
            request.method === "HEAD" ? null : ready ? "ready\n" : "not ready\n",
            {
              status: ready ? 200 : 503,
              headers: { "content-type": "text/plain; charset=utf-8" },
            },
          );
        }
        if (path !== "/metrics") {
          return new Response("joold serves /metrics (and /sync-ready with a key file)\n", {
            status: 404,
          });
        }
        if (request.method !== "GET" && request.method !== "HEAD") {
          return new Response("GET /metrics\n", { status: 405, headers: { allow: "GET, HEAD" } });
        }
        const body = await collect();
        answered.scrapes++;
        return new Response(request.method === "HEAD" ? null : body, {
          headers: { "content-type": CONTENT_TYPE },
        });
      });
    } catch (error) {
      if (
        error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied
      ) {
        throw new MetricsPermissionError(config, { cause: error });
      }
      throw new Error(
        `--metrics=${config.permission}: cannot listen there: ${(error as Error).message}`,
        { cause: error },
      );
    }
    return new MetricsServer(server, answered);
  }

  /**
   * Stops listening; resolves once open connections are done. Idempotent.
   *
   * @returns resolves when closed
   */
  close(): Promise<void> {
    this.#closed ??= this.#server.shutdown();
    return this.#closed;
  }
}
