// Draining the speaker, RFC 8326 graceful shutdown (docs/bgp.md, "Drain and shutdown"):
// every route goes out again with GRACEFUL_SHUTDOWN (65535:0) and extra copies of the local
// AS, so routers move traffic to other paths; after a wait, everything is withdrawn.
// Sessions stay up throughout. A shutdown takes the last step alone. The state here is
// what export (policy.ts) and every peer's table start from; the speaker re-sends.

export interface DrainOptions {
  /** Extra copies of the local AS on every route while draining (default 0). */
  readonly prepend?: number;
  /** How long routers get to move traffic before the withdrawal (default 5 s). */
  readonly waitMs?: number;
}

/** What a drain asks of the speaker. */
export interface DrainTarget {
  /** Routes in the table, for the log. */
  prefixCount(): number;
  /** Marks every route for every peer again: what they should have has changed. */
  resendAll(): void;
  /** Resolves once every Established peer has been sent everything (or at a timeout). */
  flushed(): Promise<void>;
  log(message: string): void;
}

export class Drain {
  /** Set while routes go out with GRACEFUL_SHUTDOWN and this many extra prepends. */
  gracefulShutdown: { readonly prepend: number } | null = null;
  /** Every route withdrawn from every peer: the end of a drain, or a shutdown. */
  withdrawn = false;

  get active(): boolean {
    return this.gracefulShutdown !== null || this.withdrawn;
  }

  /** Re-announces with GRACEFUL_SHUTDOWN, waits, withdraws; resolves once that is sent. */
  async run(options: DrainOptions, speaker: DrainTarget): Promise<void> {
    this.gracefulShutdown = { prepend: options.prepend ?? 0 };
    speaker.log(`drain: re-announcing ${speaker.prefixCount()} prefixes with GRACEFUL_SHUTDOWN`);
    speaker.resendAll();
    await speaker.flushed();
    await new Promise((r) => setTimeout(r, options.waitMs ?? 5_000));
    this.withdrawn = true;
    speaker.log("drain: withdrawing everything");
    speaker.resendAll();
    await speaker.flushed();
  }

  /** Back to the plain table; the speaker re-sends. */
  end(): void {
    this.gracefulShutdown = null;
    this.withdrawn = false;
  }
}
