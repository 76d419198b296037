// `ralph demo`: the whole mission on this machine, narrated (the work is in demo/run.ts).

import { UserError } from '../output.js';

export async function run(opts: { transport: 'auto' | 'ziti' | 'tcp' }): Promise<void> {
  const { runDemo, DemoError } = await import('../../demo/run.js');
  try {
    process.exitCode = await runDemo(opts);
  } catch (err) {
    if (err instanceof DemoError) throw new UserError(`demo: ${err.message}`);
    throw err;
  }
}
