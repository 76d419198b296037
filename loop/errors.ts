// Errors the loop code raises on purpose. Their messages are the one line a user (or a client) sees.

/** Setting up a loop failed before anything was written: bad task dir, bad prd.json, missing agent. */
export class LoopSetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LoopSetupError';
  }
}

/** A request the runner will not carry out in its current state (write outside interactive mode, …). */
export class LoopRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LoopRefusedError';
  }
}
