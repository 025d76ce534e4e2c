/**
 * The small interfaces the daemon core is composed from: a kernel channel (Generic Netlink to one
 * Jool instance) and a network channel (the UDP multicast sync group). Real implementations use libc
 * sockets driven by the reactor; tests may pass in-process fakes that speak the same bytes.
 *
 * @module
 */

/**
 * Called with a session payload; the view is only valid during the call (copy to keep it). The
 * network channel also passes the sender's address (`from`, e.g. `2001:db8::4`), for messages.
 */
export type PayloadHandler = (payload: Uint8Array, from?: string) => void;

/** Called with an error the channel met asynchronously (kernel error reply, failed send...). */
export type ErrorHandler = (error: Error) => void;

/** The Generic Netlink side: one Jool instance in this network namespace. */
export interface KernelChannel {
  /**
   * Sets the handler for each session batch the kernel multicasts for OUR instance. The payload is
   * the content of the batch's SESSION_ENTRIES attribute (a list of JNLAL_ENTRY attributes): a
   * view of the receive buffer, valid only during the call (copy it to keep it). The channel sends
   * JOOLD_ACK BEFORE it calls the handler, so that the kernel builds its next batch while the
   * handler forwards this one (the kernel holds its next batch until the ACK); the handler runs
   * even when the ACK could not be sent.
   */
  onBatch(handler: PayloadHandler): void;
  /**
   * Sets the handler called once the channel has read every message its socket held (a read
   * found none left) after one or more batches: the end of a burst. A daemon that joins batches
   * into one datagram (secure sync, {@linkcode NetworkChannel.coalesceBytes}) sends what it holds
   * then. Optional: without it, every batch is sent on its own.
   */
  onDrained?(handler: () => void): void;
  /** Sets the handler for kernel error replies and other asynchronous failures. */
  onError(handler: ErrorHandler): void;
  /** Sends JOOLD_ADD carrying `payload` (a datagram from the sync group) to our instance. */
  add(payload: Uint8Array): void;
  /** Sends JOOLD_ADVERTISE: the kernel queues its whole session table for sending. */
  advertise(): void;
  /** Stops receiving and closes the socket. Idempotent. */
  close(): void;
}

/** The UDP multicast side. */
export interface NetworkChannel {
  /** Sets the handler for each datagram received from the group. */
  onDatagram(handler: PayloadHandler): void;
  /**
   * Sends `payload` as one datagram to the group (or to every unicast peer). Throws on a failed
   * send: the socket channel's `SendError` (lib/net/multicast.ts) names the destinations that did
   * not get it and carries the exact bytes for {@linkcode NetworkChannel.sendTo}.
   */
  send(payload: Uint8Array): void;
  /**
   * When set, the daemon may join the kernel batches of one burst ({@linkcode
   * KernelChannel.onDrained}) into one payload of at most this many bytes before it calls
   * {@linkcode NetworkChannel.send} (a list of session entries stays one: the receiver hands it
   * to its kernel as one JOOLD_ADD). Unset (the plain channel: the C daemon's bytes): one
   * datagram per kernel batch.
   */
  readonly coalesceBytes?: number;
  /**
   * The names of the destinations every datagram goes to (the group's, or each peer's
   * `[2001:db8::5]:6464`), when the channel has several or names them.
   */
  readonly destinations?: readonly string[];
  /**
   * Sends `datagram` AS IT IS (a wrapping channel such as the secure one does not seal it again)
   * to some of {@linkcode NetworkChannel.destinations}: a SendError's bytes to the destinations
   * that failed, or a datagram meant for some peers only (already sealed by its caller). Throws
   * as `send` does.
   */
  sendTo?(datagram: Uint8Array, destinations: readonly string[]): void;
  /**
   * The destination that reaches the sender of a received datagram (its `from`): the peer's own
   * with unicast peers, the group with a group; undefined for a sender that is no peer. For a
   * reply to one sender (a request to send again what it missed): `sendTo(bytes, [it])`.
   */
  destinationOf?(from: string): string | undefined;
  /** Sets the handler for receive errors and dropped datagrams (too large), when it reports them. */
  onError?(handler: ErrorHandler): void;
  /**
   * Calls `handler` once when a send may succeed again after EAGAIN/ENOBUFS, when the channel can
   * tell (a socket: poll's POLLOUT); without it the daemon retries on a timer.
   */
  whenWritable?(handler: () => void): void;
  /** Stops receiving and closes the socket. Idempotent. */
  close(): void;
}
