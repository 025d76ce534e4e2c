/**
 * The typed configuration model of joold: what the daemon needs to start, after the command line and
 * the JSON files have been read, merged and validated. Keys, defaults and help live in `keys.ts`.
 *
 * @module
 */

/** Log verbosity, most to least severe. */
export type LogLevel = "error" | "warn" | "info" | "debug";

/** The kernel side: which Jool instance of this network namespace the daemon serves. */
export interface ModConfig {
  /** Jool instance name (at most 15 characters), "default" unless configured. */
  readonly instance: string;
}

/**
 * The sync network: a UDP multicast group shared by the translators, or (`peers`) a list of
 * unicast peers: exactly one of `multicastAddress` and `peers` is set.
 */
export interface NetConfig {
  /** Multicast group, IPv4 or IPv6 literal (validated: it is a multicast address). */
  readonly multicastAddress?: string;
  /**
   * Unicast peers, in place of the group (`"peers"`, `--net.peer`): `ADDR`, `IPV4:PORT` or
   * `[IPV6]:PORT` as written (lib/config/address.ts `parsePeer`), at least one, all of one family,
   * none of this host. Every datagram goes to each; only they are accepted as senders.
   */
  readonly peers?: readonly string[];
  /**
   * UDP port as a decimal number or a service name (resolved when the socket opens): the port
   * joold listens on, and each peer's port unless the peer names its own.
   */
  readonly multicastPort: string;
  /**
   * Interface the group is joined on. IPv4 group: a local IPv4 address; IPv6 group: an interface
   * name. Undefined: let the kernel choose.
   */
  readonly inInterface?: string;
  /** Interface multicast is sent from. IPv4: a local IPv4 address; IPv6: an interface name. */
  readonly outInterface?: string;
  /** IPv4 TTL or IPv6 hop limit of the datagrams sent, 0-255 (with peers, 64 unless set). */
  readonly ttl: number;
  /** Whether SO_REUSEADDR is set on the socket (the C daemon's `"reuseaddr"`; default on). */
  readonly reuseAddress: boolean;
  /**
   * Whether datagrams of another Jool session format are translated into the local kernel's
   * (`"translate sessions"`, lib/jool/translate.ts) rather than dropped; default off.
   */
  readonly translateSessions?: boolean;
  /**
   * The secure-sync key file (lib/secure/keyfile.ts); undefined: plain datagrams, exactly the C
   * daemon's bytes.
   */
  readonly keyFile?: string;
  /**
   * Only datagrams from these addresses are accepted (`"peers allowed"`); undefined: any sender
   * (with `peers`: the peers, and these besides).
   */
  readonly peersAllowed?: readonly string[];
  /** Secure sync's resend ring, bytes (`"resend buffer"`, lib/secure/recovery.ts); default 1 MiB. */
  readonly resendBuffer?: number;
  /** Secure sync's sync-ready timeout, seconds (`"sync-ready timeout"`); default 60. */
  readonly syncReadyTimeout?: number;
}

/** The optional UDP stats server. */
export interface StatsConfig {
  /** Address to bind (every address getaddrinfo yields for it); "::" also serves IPv4. */
  readonly address: string;
  /** UDP port, 1-65535. */
  readonly port: number;
}

/** How log lines are written: `joold: LEVEL: message`, or one JSON object per line. */
export type LogFormat = "text" | "json";

/** The Prometheus endpoint (HTTP, `/metrics`). */
export interface MetricsConfig {
  /** Host to listen on: an IP literal (IPv6 without brackets) or a host name. */
  readonly hostname: string;
  /** TCP port, 1-65535. */
  readonly port: number;
  /** As Deno's `--allow-net` names it: `[::1]:9477`, `127.0.0.1:9477`. */
  readonly permission: string;
}

/** Everything the daemon needs to start. */
export interface Config {
  /** The kernel side. */
  readonly mod: ModConfig;
  /** The sync network; `null` disables it: the daemon then prints the kernel's sessions instead. */
  readonly net: NetConfig | null;
  /** The stats server; `null` when not configured. */
  readonly stats: StatsConfig | null;
  /** Log verbosity (stderr). */
  readonly logLevel: LogLevel;
  /** Turn the instance's `ss-enabled` global on at startup if it is off. */
  readonly enableSync: boolean;
  /** Ask the kernel to advertise its whole session table once the daemon is up. */
  readonly advertiseOnStart: boolean;
  /** The Prometheus endpoint; absent or `null` when not configured. */
  readonly metrics?: MetricsConfig | null;
  /** How log lines are written (default "text"). */
  readonly logFormat?: LogFormat;
}
