// Push options (`git push -o ralph.iterations=20`) as the hooks see them: GIT_PUSH_OPTION_COUNT and
// GIT_PUSH_OPTION_<n>. Validated here, at the edge; options not starting with `ralph.` are not ours.

import { AGENT_NAMES as AGENTS, type AgentName } from '../agents/registry.js';
import { parseDuration, TIMEOUT_RANGE, timeoutInRange } from '../store/duration.js';
import { iterationsRangeMessage, MAX_ITERATIONS } from '../store/iteration-limit.js';


export interface RalphPushOptions {
  agent?: AgentName;
  agentCmd?: string;
  maxIterations?: number;
  task?: string;
  iterationTimeoutMs?: number;
  stallTimeoutMs?: number;
  fallbackAgent?: AgentName;
  noStart: boolean;
  restart: boolean;
}

const KNOWN = [
  'ralph.agent',
  'ralph.agent-cmd',
  'ralph.iterations',
  'ralph.task',
  'ralph.iteration-timeout',
  'ralph.stall-timeout',
  'ralph.fallback-agent',
  'ralph.no-start',
  'ralph.restart',
];

/** The raw push options git handed to this hook. */
export function readPushOptions(env: NodeJS.ProcessEnv = process.env): string[] {
  const count = Number(env.GIT_PUSH_OPTION_COUNT ?? 0);
  const out: string[] = [];
  for (let i = 0; Number.isInteger(count) && i < count; i++) out.push(env[`GIT_PUSH_OPTION_${i}`] ?? '');
  return out;
}

function flag(name: string, value: string | undefined, errors: string[]): boolean {
  if (value === undefined || ['true', 'yes', '1', ''].includes(value)) return true;
  if (['false', 'no', '0'].includes(value)) return false;
  errors.push(`push option ${name} takes no value (or true/false), got ${JSON.stringify(value)}`);
  return false;
}

/** Parses the `ralph.*` options; every problem becomes one message in `errors`. */
export function parsePushOptions(raw: string[]): { options: RalphPushOptions; errors: string[] } {
  const options: RalphPushOptions = { noStart: false, restart: false };
  const errors: string[] = [];
  for (const opt of raw) {
    if (!opt.startsWith('ralph.')) continue;
    const eq = opt.indexOf('=');
    const name = eq === -1 ? opt : opt.slice(0, eq);
    const value = eq === -1 ? undefined : opt.slice(eq + 1);
    const needValue = (): string | undefined => {
      if (value === undefined || value === '') errors.push(`push option ${name} needs a value (${name}=...)`);
      return value || undefined;
    };
    switch (name) {
      case 'ralph.agent':
      case 'ralph.fallback-agent': {
        const v = needValue();
        if (v === undefined) break;
        if (!(AGENTS as readonly string[]).includes(v)) errors.push(`push option ${name} must be one of ${AGENTS.join(', ')}, got ${JSON.stringify(v)}`);
        else if (name === 'ralph.agent') options.agent = v as AgentName;
        else options.fallbackAgent = v as AgentName;
        break;
      }
      case 'ralph.iteration-timeout':
      case 'ralph.stall-timeout': {
        const v = needValue();
        if (v === undefined) break;
        const ms = parseDuration(v);
        if (ms === null) errors.push(`push option ${name} must be a duration such as 90s, 45m or 2h, got ${JSON.stringify(v)}`);
        else if (!timeoutInRange(ms)) errors.push(`push option ${name} must be ${TIMEOUT_RANGE}, got ${JSON.stringify(v)}`);
        else if (name === 'ralph.iteration-timeout') options.iterationTimeoutMs = ms;
        else options.stallTimeoutMs = ms;
        break;
      }
      case 'ralph.agent-cmd': {
        const v = needValue();
        if (v === undefined) break;
        if (v.length > 4096) errors.push('push option ralph.agent-cmd is longer than 4096 characters');
        else options.agentCmd = v;
        break;
      }
      case 'ralph.iterations': {
        const v = needValue();
        if (v === undefined) break;
        if (/^\d+$/.test(v) && Number(v) >= 1 && Number(v) <= MAX_ITERATIONS) options.maxIterations = Number(v);
        else errors.push(iterationsRangeMessage('push option ralph.iterations', JSON.stringify(v)));
        break;
      }
      case 'ralph.task': {
        const v = needValue();
        if (v === undefined) break;
        if (v.startsWith('/') || v.split('/').includes('..') || v.length > 1024) {
          errors.push(`push option ralph.task must be a path inside the repo, got ${JSON.stringify(v)}`);
        } else options.task = v;
        break;
      }
      case 'ralph.no-start':
        options.noStart = flag(name, value, errors);
        break;
      case 'ralph.restart':
        options.restart = flag(name, value, errors);
        break;
      default:
        errors.push(`unknown push option ${name} (known: ${KNOWN.join(', ')})`);
    }
  }
  return { options, errors };
}
