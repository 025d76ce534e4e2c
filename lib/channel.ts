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
  /** Sends `payload` as one datagram to the group. Throws on a failed send. */
  send(payload: Uint8Array): void;
  /** Stops receiving and closes the socket. Idempotent. */
  close(): void;
}
