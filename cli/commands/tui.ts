// `ralph tui`: every loop, live. The TUI (renderer, emulator) is loaded only here.

export async function run(opts: { timeout: number }): Promise<void> {
  // After SIGHUP the terminal is gone: writing to it fails (EIO, EPIPE), and nobody is left to tell.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});
  const { runTui } = await import('../../tui/main.js');
  const exit = await runTui(opts);
  if (exit.line) process.stderr.write(`ralph: ${exit.line}\n`);
  // Loops run on; nothing of this process needs to outlive the screen.
  process.exit(exit.code);
}
