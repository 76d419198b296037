// `ralph doctor [--no-repair]`: checks this machine's ralph data and tools, repairs what is safe,
// prints one line per finding; exits 1 while a problem is left.

import { runDoctor, type Verdict } from '../../doctor/checks.js';
import { homePaths } from '../../store/paths.js';

const MARK: Record<Verdict, string> = { ok: 'ok     ', fixed: 'fixed  ', problem: 'PROBLEM', info: 'info   ' };

export async function run(opts: { repair: boolean }): Promise<void> {
  const findings = await runDoctor(homePaths(), { repair: opts.repair });
  for (const f of findings) process.stdout.write(`${MARK[f.verdict]}  ${f.topic.padEnd(8)} ${f.text}\n`);
  const problems = findings.filter((f) => f.verdict === 'problem').length;
  const fixed = findings.filter((f) => f.verdict === 'fixed').length;
  if (problems > 0) {
    process.stderr.write(`ralph: doctor found ${problems} problem(s) it could not repair (see PROBLEM above)\n`);
    process.exitCode = 1;
  } else {
    process.stdout.write(fixed > 0 ? `repaired ${fixed} thing(s); all is well now\n` : 'all is well\n');
  }
}
