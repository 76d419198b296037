// `ralph ziti setup`: provisions a box and its laptops on the OpenZiti controller the user is logged in
// to, says what it did, and prints the two commands to run next. `--dry-run` prints the `ziti`
// commands instead of running them. The work is in install/ziti-setup.ts.

import { resolve } from 'node:path';
import { UserError } from '../output.js';

export interface SetupOptions {
  service: string;
  box?: string;
  laptop?: string[];
  hostPort: number;
  out: string;
  edgeRouterRoles: string;
  dryRun?: boolean;
}

const VERB = { create: 'created', update: 'updated', keep: 'kept   ' } as const;
const DRY_VERB = { create: 'create ', update: 'update ', keep: 'keep   ' } as const;

/** A word of a printed command, quoted for sh when it needs it. */
function word(w: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`;
}

export async function setup(opts: SetupOptions): Promise<void> {
  const [{ ZitiAdmin, ZitiAdminError, currentLogin }, { planZitiSetup, applyZitiSetup, shellCommand }, { zitiBinary }] = await Promise.all([
    import('../../install/ziti-admin.js'),
    import('../../install/ziti-setup.js'),
    import('../../transport/ziti/tunnel-process.js'),
  ]);
  let bin: string;
  try {
    bin = zitiBinary('ziti');
  } catch (err) {
    throw new UserError((err as Error).message.replace(/^ziti: /, ''));
  }
  const req = {
    service: opts.service,
    box: opts.box ?? `${opts.service}-box`,
    laptops: opts.laptop?.length ? opts.laptop : [`${opts.service}-laptop`],
    hostPort: opts.hostPort,
    outDir: resolve(opts.out),
    edgeRouterRoles: opts.edgeRouterRoles.split(',').map((r) => r.trim()).filter(Boolean),
  };
  const admin = new ZitiAdmin(bin);
  const out = (line = '') => process.stdout.write(line + '\n');

  try {
    const login = currentLogin(admin.env);
    let plan;
    try {
      plan = await planZitiSetup(admin, req);
    } catch (err) {
      // A dry run still shows every command when it cannot read the controller.
      if (!opts.dryRun || !(err instanceof ZitiAdminError) || err.kind === 'other') throw err;
      process.stderr.write(`ralph: ${err.message}\nralph: showing every command, as if the network held nothing yet\n`);
      plan = await planZitiSetup(admin, req, { assumeEmpty: true });
    }
    const where = login ? `OpenZiti controller ${login.url} (logged in as ${login.username})` : 'the OpenZiti controller of `ziti edge login`';
    for (const w of plan.warnings) process.stderr.write(`ralph: warning: ${w}\n`);

    if (opts.dryRun) {
      out(`dry run on ${where}: nothing is changed.`);
      for (const s of plan.steps) out(`  ${DRY_VERB[s.action]} ${s.what}`);
      const commands = plan.steps.flatMap((s) => s.commands);
      out();
      if (commands.length === 0) out('Nothing to do: everything is already in place.');
      else {
        out('The commands it would run:');
        for (const c of commands) out(`  ${shellCommand(c)}`);
      }
    } else {
      out(`Setting up ${req.service} on ${where}:`);
      await applyZitiSetup(plan, (s) => out(`  ${VERB[s.action]} ${s.what}`));
      const changed = plan.steps.filter((s) => s.action !== 'keep').length;
      out();
      out(changed === 0 ? 'Nothing to change: everything was already in place.' : `Done: ${changed} of ${plan.steps.length} created or updated; identity files are 0600.`);
    }

    const boxFile = plan.files[req.box]!;
    out();
    out(`Next, on the box (copy ${boxFile} there first if this is not the box, and keep it private):`);
    out(`  ${['ralph', 'daemon', '--ziti-service', req.service, '--ziti-identity', boxFile, '--ziti-host-port', String(req.hostPort)].map(word).join(' ')}`);
    out(`Then on ${req.laptops.length === 1 ? 'the laptop' : 'each laptop'}, in your project's git checkout:`);
    for (const laptop of req.laptops) {
      out(`  ${['ralph', 'remote', 'add', req.box, '--ziti-service', req.service, '--ziti-identity', plan.files[laptop]!].map(word).join(' ')}`);
    }
  } catch (err) {
    if (err instanceof ZitiAdminError) throw new UserError(err.message);
    throw err;
  }
}
