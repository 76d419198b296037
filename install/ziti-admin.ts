// The `ziti` CLI as an OpenZiti administrator uses it: `ziti edge list|create|update|enroll …` against
// the controller the user logged in to with `ziti edge login` (its session lives in the CLI's own
// config, ZITI_CONFIG_DIR or ~/.config/ziti; ralph never sees a password). Argument arrays only;
// every failure is one line in the user's terms.

import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** Longest one `ziti edge` command may take (the CLI itself retries an unreachable controller ~3 s). */
const COMMAND_TIMEOUT_MS = 60_000;

export class ZitiAdminError extends Error {
  constructor(
    message: string,
    /** `login`: no valid `ziti edge login`; `unreachable`: the controller did not answer. */
    readonly kind: 'login' | 'unreachable' | 'other' = 'other',
  ) {
    super(message);
    this.name = 'ZitiAdminError';
  }
}

/** One entity as `ziti edge list … -j` prints it (only the fields ralph reads). */
export interface ZitiEntity {
  id: string;
  name: string;
  [field: string]: unknown;
}

/** The entity types ralph lists and creates, as the CLI names them. */
export type ZitiEntityType =
  | 'configs'
  | 'services'
  | 'service-policies'
  | 'edge-router-policies'
  | 'service-edge-router-policies'
  | 'identities'
  | 'edge-routers';

/** Where `ziti edge login` keeps its session: ZITI_CONFIG_DIR, else ~/.config/ziti (as the CLI decides). */
function cliConfigFile(env: NodeJS.ProcessEnv): string {
  return join(env.ZITI_CONFIG_DIR || join(env.HOME || homedir(), '.config', 'ziti'), 'ziti-cli.json');
}

/** The controller and user of the current `ziti edge login`, or null when there is none to read. */
export function currentLogin(env: NodeJS.ProcessEnv = process.env): { url: string; username: string } | null {
  try {
    const config = JSON.parse(readFileSync(cliConfigFile(env), 'utf8')) as {
      default?: string;
      edgeIdentities?: Record<string, { url?: unknown; username?: unknown }>;
    };
    const login = config.edgeIdentities?.[config.default || 'default'];
    if (typeof login?.url !== 'string') return null;
    let url = login.url;
    try {
      url = new URL(login.url).origin; // the CLI keeps the management API's URL; the controller is its origin
    } catch {}
    return { url, username: typeof login.username === 'string' ? login.username : '?' };
  } catch {
    return null;
  }
}

/**
 * The CLI's error in one line: its `error: …` line, and when the controller answered with a JSON body,
 * that body's reason instead of the whole document.
 */
export function zitiErrorLine(output: string): string {
  const at = output.search(/^error: /m);
  const text = at === -1 ? output.trim() : output.slice(at + 'error: '.length);
  const head = text.split('\n')[0]!.trim();
  const body = /Server returned: (\{[\s\S]*\})/.exec(text)?.[1];
  if (body) {
    try {
      const e = (JSON.parse(body) as { error?: { code?: string; message?: string; cause?: { field?: string; reason?: string; value?: unknown } } }).error;
      const cause = e?.cause?.reason ? `${e.cause.field ? `${e.cause.field} ` : ''}${e.cause.reason}${e.cause.value !== undefined ? ` (${JSON.stringify(e.cause.value)})` : ''}` : '';
      if (e?.code === 'UNAUTHORIZED') return 'the controller refused the session of `ziti edge login` (expired or not valid)';
      if (cause || e?.message) return `${e?.code ? `${e.code}: ` : ''}${cause || e?.message}`;
    } catch {
      /* not JSON after all: the first line says enough */
    }
  }
  return head.replace(/\s*Server returned:.*$/, '') || 'no message';
}

/** Runs `ziti edge …` commands as the logged-in administrator. */
export class ZitiAdmin {
  readonly env: NodeJS.ProcessEnv;

  constructor(
    readonly bin: string,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    // Never let the CLI ask GitHub for a newer release (it does unless told not to).
    this.env = { ...env, ZITI_CHECK_VERSION: 'false' };
  }

  /** Runs `ziti <args>`; resolves with stdout, throws a ZitiAdminError naming the command and the reason. */
  async run(args: string[]): Promise<string> {
    const r = await execa(this.bin, args, { env: this.env, extendEnv: false, stdin: 'ignore', reject: false, timeout: COMMAND_TIMEOUT_MS });
    if (!r.failed) return r.stdout;
    const what = `ziti ${args.slice(0, 3).join(' ')}`;
    if (r.timedOut) throw new ZitiAdminError(`${what} took longer than ${COMMAND_TIMEOUT_MS / 1000} s; is the controller reachable?`, 'unreachable');
    if (r.exitCode === undefined) throw new ZitiAdminError(`cannot run ${this.bin}: ${r.originalMessage ?? r.shortMessage}`);
    const why = zitiErrorLine(`${r.stderr}\n${r.stdout}`);
    if (/no identities found in CLI config/.test(why)) {
      throw new ZitiAdminError('not logged in to an OpenZiti controller: run `ziti edge login <controller URL> -u <admin user>` first', 'login');
    }
    if (/refused the session/.test(why)) throw new ZitiAdminError(`${why}: log in again with \`ziti edge login\``, 'login');
    if (/dial tcp|no such host|connection refused|i\/o timeout/.test(why)) {
      const detail = /(dial tcp .*|no such host.*|i\/o timeout.*)$/.exec(why)?.[1] ?? why;
      throw new ZitiAdminError(`cannot reach the controller of \`ziti edge login\` (${detail}); is it up, and is this the right one?`, 'unreachable');
    }
    throw new ZitiAdminError(`${what} failed: ${why}`);
  }

  /** The entities of `type` whose names are among `names` (one `ziti edge list` call). */
  async list(type: ZitiEntityType, names?: string[]): Promise<ZitiEntity[]> {
    const filter = names ? `name in [${names.map((n) => JSON.stringify(n)).join(',')}] limit none` : 'true limit none';
    const out = await this.run(['edge', 'list', type, filter, '--output-json']);
    let data: unknown;
    try {
      data = (JSON.parse(out) as { data?: unknown }).data;
    } catch {
      throw new ZitiAdminError(`ziti edge list ${type} printed something that is not JSON; is ${this.bin} an OpenZiti v1 CLI?`);
    }
    if (!Array.isArray(data)) throw new ZitiAdminError(`ziti edge list ${type} printed no "data" list; is ${this.bin} an OpenZiti v1 CLI?`);
    return data.filter((e): e is ZitiEntity => typeof e?.id === 'string' && typeof e?.name === 'string');
  }
}
