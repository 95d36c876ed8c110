// Fault injection for failure tests, outside the Dataplane's contract: a switch that stalls
// the forwarding worker as a hung thread would. The worker blocks (Atomics.wait) at its next
// batch, heartbeat tick or message while the switch is on: nothing is forwarded, nothing
// is answered, the heartbeat stops, so the MUX must withdraw its VIPs
// (docs/architecture.md#control-plane-survives-the-data-plane). An engine has one only when
// a test, or a process started for failure tests, hands it in (`DataplaneOptions.stall`).
//
//   const stall = new StallSwitch();
//   const dp = new Dataplane({ io, stall });
//   stall.set(true);  // ...the MUX withdraws...  stall.set(false);

export class StallSwitch {
  /** The word the worker waits on (1: stalled), in memory shared with the worker thread. */
  readonly word: Int32Array = new Int32Array(new SharedArrayBuffer(4));

  get stalled(): boolean {
    return Atomics.load(this.word, 0) === 1;
  }

  /** Stalls (true) or resumes (false) the worker. */
  set(on: boolean): void {
    Atomics.store(this.word, 0, on ? 1 : 0);
    if (!on) Atomics.notify(this.word, 0);
  }

  /**
   * Toggles the stall on each `signal` (the labs' failure tests send SIGUSR2 to a MUX
   * process), saying so through `log`. Returns the function that removes the handler.
   */
  bindSignal(signal: NodeJS.Signals, log: (line: string) => void): () => void {
    const toggle = () => {
      this.set(!this.stalled);
      log(`fault injection: forwarding worker ${this.stalled ? "stalled" : "resumed"} (${signal})`);
    };
    process.on(signal, toggle);
    return () => {
      process.off(signal, toggle);
    };
  }
}
