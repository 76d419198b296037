// `ralph tui`: every loop, live. The TUI (renderer, emulator) is loaded only here.

import { endAsOnHangUp, whenOutputLost } from '../output.js';

export async function run(opts: { timeout: number }): Promise<void> {
  // Output that cannot be written any more (EIO: the terminal is gone) ends the TUI as SIGHUP does.
  whenOutputLost(endAsOnHangUp);
  const { runTui } = await import('../../tui/main.js');
  const exit = await runTui(opts);
  if (exit.line) process.stderr.write(`ralph: ${exit.line}\n`);
  // Loops run on; nothing of this process needs to outlive the screen.
  process.exit(exit.code);
}
