// `ralph ziti setup`: everything one box and its laptops need on an OpenZiti network, made with the
// `ziti` CLI on the controller the user is logged in to (`ziti edge login`):
//
//   config    S-host        host.v1       tcp 127.0.0.1:<host port>   (where the box's tunneler sends)
//   config    S-intercept   intercept.v1  S.ziti:<host port>          (for OS-level tunnelers on laptops)
//   service   S             with both configs
//   policy    S-bind        Bind  S  to #S-hosts     (the box identity)
//   policy    S-dial        Dial  S  to #S-clients   (every laptop identity)
//   edge-router-policy          S-edge-routers          #S-hosts, #S-clients may use the routers
//   service-edge-router-policy  S-service-edge-routers  S may use the routers
//   identities  the box (attribute S-hosts) and each laptop (S-clients), enrolled to OUT/NAME.json, 0600
//
// It first reads what exists (one `ziti edge list` per type), then creates what is missing and updates
// what differs; what is already right is left alone, so a second run changes nothing. Attributes, not
// identity names, are what the policies match: adding a laptop later is one more run with --laptop.

import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ZitiAdmin, ZitiAdminError, type ZitiEntity, type ZitiEntityType } from './ziti-admin.js';

export interface ZitiSetupRequest {
  /** The service the daemon binds (its ralph address is `ziti:<service>`). */
  service: string;
  /** The box's identity name. */
  box: string;
  /** The laptops' identity names. */
  laptops: string[];
  /** The port on the box's 127.0.0.1 that host.v1 forwards to (the daemon's --ziti-host-port). */
  hostPort: number;
  /** Where the identity files go (absolute). */
  outDir: string;
  /** Which edge routers the identities and the service may use (OpenZiti roles). */
  edgeRouterRoles: string[];
}

export type StepAction = 'create' | 'update' | 'keep';

export interface SetupStep {
  /** What the step is about, e.g. `service-policy ralph-bind (Bind ralph → #ralph-hosts)`. */
  what: string;
  action: StepAction;
  /** The `ziti` commands it runs (what --dry-run prints). */
  commands: string[][];
  /** Runs the commands (absent when there is nothing to do). */
  apply?: () => Promise<void>;
}

export interface SetupPlan {
  steps: SetupStep[];
  /** Identity files, by identity name. */
  files: Record<string, string>;
  /** Things the user should know that do not stop the setup (no edge router online, …). */
  warnings: string[];
}

export const NAME_RULE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** `ziti edge create identity device|user|service` are subcommands, not identity names. */
const RESERVED_IDENTITY_NAMES = new Set(['device', 'user', 'service']);

/** The names of everything setup makes for service `service`. */
export function setupNames(service: string) {
  return {
    hostConfig: `${service}-host`,
    interceptConfig: `${service}-intercept`,
    bindPolicy: `${service}-bind`,
    dialPolicy: `${service}-dial`,
    routerPolicy: `${service}-edge-routers`,
    serviceRouterPolicy: `${service}-service-edge-routers`,
    hostsAttribute: `${service}-hosts`,
    clientsAttribute: `${service}-clients`,
    interceptAddress: `${service}.ziti`,
  };
}

/** Checks the request's names; throws a ZitiAdminError naming the bad one. */
export function checkSetupRequest(req: ZitiSetupRequest): void {
  const check = (what: string, name: string) => {
    if (!NAME_RULE.test(name)) {
      throw new ZitiAdminError(`bad ${what} ${JSON.stringify(name)}: use letters, digits, '.', '_' and '-' (at most 64, starting with a letter or digit)`);
    }
  };
  check('service name', req.service);
  for (const id of [req.box, ...req.laptops]) {
    check('identity name', id);
    if (RESERVED_IDENTITY_NAMES.has(id)) throw new ZitiAdminError(`bad identity name ${JSON.stringify(id)}: the ziti CLI reserves it; choose another`);
  }
  if (req.laptops.length === 0) throw new ZitiAdminError('give at least one laptop identity (--laptop NAME)');
  if (req.laptops.includes(req.box)) throw new ZitiAdminError(`identity ${req.box} cannot be both the box and a laptop`);
  if (new Set(req.laptops).size !== req.laptops.length) throw new ZitiAdminError('a laptop identity is named twice');
  if (!Number.isInteger(req.hostPort) || req.hostPort < 1 || req.hostPort > 65535) throw new ZitiAdminError(`bad host port ${req.hostPort}`);
  for (const role of req.edgeRouterRoles) {
    if (!/^[#@][A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(role)) {
      throw new ZitiAdminError(`bad edge-router role ${JSON.stringify(role)}: expected #attribute, #all or @router-name`);
    }
  }
}

/** What exists now, read with one `ziti edge list` per type. */
interface Current {
  configs: ZitiEntity[];
  services: ZitiEntity[];
  servicePolicies: ZitiEntity[];
  routerPolicies: ZitiEntity[];
  serviceRouterPolicies: ZitiEntity[];
  identities: ZitiEntity[];
  edgeRouters: ZitiEntity[];
}

async function readCurrent(admin: ZitiAdmin, req: ZitiSetupRequest): Promise<Current> {
  const n = setupNames(req.service);
  const list = (type: ZitiEntityType, names?: string[]) => admin.list(type, names);
  // The first call alone tells whether we are logged in at all; the rest at once.
  const services = await list('services', [req.service]);
  const [configs, servicePolicies, routerPolicies, serviceRouterPolicies, identities, edgeRouters] = await Promise.all([
    list('configs', [n.hostConfig, n.interceptConfig]),
    list('service-policies', [n.bindPolicy, n.dialPolicy]),
    list('edge-router-policies', [n.routerPolicy]),
    list('service-edge-router-policies', [n.serviceRouterPolicy]),
    list('identities', [req.box, ...req.laptops]),
    list('edge-routers'),
  ]);
  return { services, configs, servicePolicies, routerPolicies, serviceRouterPolicies, identities, edgeRouters };
}

const NOTHING: Current = { configs: [], services: [], servicePolicies: [], routerPolicies: [], serviceRouterPolicies: [], identities: [], edgeRouters: [] };

const byName = (list: ZitiEntity[], name: string) => list.find((e) => e.name === name);
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
const sameSet = (a: string[], b: string[]) => a.length === b.length && a.every((x) => b.includes(x));

/** Deep equality of two JSON values (key order ignored). */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/**
 * Roles as the controller stores them: `@name` becomes `@<id>`. `resolve` maps a name we asked for to
 * the id the controller knows (undefined while the entity does not exist yet).
 */
function sameRoles(stored: unknown, wanted: string[], resolve: (name: string) => string | undefined): boolean {
  const asStored = wanted.map((r) => (r.startsWith('@') ? `@${resolve(r.slice(1)) ?? `?${r.slice(1)}`}` : r));
  const have = strings(stored);
  return sameSet(have, asStored) || sameSet(have, wanted);
}

/** A create-or-update-or-keep step for one named entity. */
function entityStep(
  admin: ZitiAdmin,
  what: string,
  existing: ZitiEntity | undefined,
  matches: (e: ZitiEntity) => boolean,
  create: string[],
  update: string[],
): SetupStep {
  if (!existing) return { what, action: 'create', commands: [create], apply: async () => void (await admin.run(create)) };
  if (matches(existing)) return { what, action: 'keep', commands: [] };
  return { what, action: 'update', commands: [update], apply: async () => void (await admin.run(update)) };
}

/** The SHA-1 fingerprint of an identity file's certificate, as the controller shows it (lowercase hex). */
function fileFingerprint(file: string): string | null {
  try {
    const id = JSON.parse(readFileSync(file, 'utf8')) as { id?: { cert?: unknown } };
    if (typeof id.id?.cert !== 'string') return null;
    return new X509Certificate(id.id.cert.replace(/^pem:/, '')).fingerprint.replace(/:/g, '').toLowerCase();
  } catch {
    return null;
  }
}

/**
 * Enrolls an identity from a JWT into `file`, 0600 from the first byte on disk: the CLI writes its
 * file with the process umask (0644), so it writes into a private directory first, and the file is
 * linked into place (never over an existing file).
 */
async function enrollTo(admin: ZitiAdmin, outDir: string, name: string, file: string, getJwt: (jwtPath: string) => Promise<void>): Promise<void> {
  let tmp: string;
  try {
    mkdirSync(outDir, { recursive: true, mode: 0o700 });
    tmp = mkdtempSync(join(outDir, `.ralph-ziti-${name}-`)); // 0700
  } catch (err) {
    throw new ZitiAdminError(`cannot write identity files in ${outDir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; choose another --out directory`);
  }
  try {
    const jwt = join(tmp, `${name}.jwt`);
    await getJwt(jwt);
    const out = join(tmp, `${name}.json`);
    await admin.run(['edge', 'enroll', jwt, '--out', out, '--rm']);
    chmodSync(out, 0o600);
    try {
      linkSync(out, file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new ZitiAdminError(`${file} appeared while enrolling ${name}; it was left as it is`);
      throw err;
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** The step for one identity: created and enrolled, enrolled (pending), attributes fixed, or kept. */
function identityStep(
  admin: ZitiAdmin,
  req: ZitiSetupRequest,
  name: string,
  attribute: string,
  existing: ZitiEntity | undefined,
  unknown: boolean,
): SetupStep {
  const file = join(req.outDir, `${name}.json`);
  const jwtShown = join(req.outDir, `${name}.jwt`);
  const enrollShown = ['edge', 'enroll', jwtShown, '--out', file, '--rm'];
  const what = `identity ${name} (${attribute}) → ${file}`;
  const haveFile = existsSync(file);

  if (!existing) {
    if (haveFile && unknown) return { what: `${what} (file exists; not checked against the controller)`, action: 'keep', commands: [] };
    if (haveFile) {
      throw new ZitiAdminError(`${file} exists, but the controller has no identity ${name}: it belongs to another network; move it away or use another --out directory`);
    }
    const create = ['edge', 'create', 'identity', name, '--role-attributes', attribute, '--jwt-output-file', jwtShown];
    return {
      what,
      action: 'create',
      commands: [create, enrollShown],
      apply: () => enrollTo(admin, req.outDir, name, file, async (jwt) => void (await admin.run([...create.slice(0, -1), jwt]))),
    };
  }

  const steps: string[][] = [];
  const work: Array<() => Promise<void>> = [];
  const attributes = strings(existing.roleAttributes);
  if (!attributes.includes(attribute)) {
    const update = ['edge', 'update', 'identity', name, '--role-attributes', [...attributes, attribute].join(',')];
    steps.push(update);
    work.push(async () => void (await admin.run(update)));
  }

  const fingerprint = (existing.authenticators as { cert?: { fingerprint?: unknown } } | undefined)?.cert?.fingerprint;
  if (haveFile) {
    if (typeof fingerprint === 'string' && fileFingerprint(file) !== fingerprint.toLowerCase()) {
      throw new ZitiAdminError(`${file} is not the enrolled identity ${name} of this controller (its certificate differs); move it away, or delete the identity (ziti edge delete identity ${name}) to make a new one`);
    }
    if ((statSync(file).mode & 0o077) !== 0) {
      steps.push(['# chmod 600', file]);
      work.push(async () => chmodSync(file, 0o600));
    }
  } else if (typeof fingerprint === 'string') {
    throw new ZitiAdminError(`identity ${name} is already enrolled, but its file ${file} is not here: use --out with the directory that holds it, or delete the identity (ziti edge delete identity ${name}) to make a new one`);
  } else {
    // Created but never enrolled (an earlier run stopped half-way): enroll it now.
    const ott = (existing.enrollment as { ott?: { id?: unknown; jwt?: unknown; expiresAt?: unknown } } | undefined)?.ott;
    const usable = typeof ott?.jwt === 'string' && typeof ott.expiresAt === 'string' && Date.parse(ott.expiresAt) > Date.now() + 60_000;
    if (usable) {
      steps.push(['# the pending enrollment token of', name, '>', jwtShown], enrollShown);
      work.push(() => enrollTo(admin, req.outDir, name, file, async (jwt) => writeFileSync(jwt, ott!.jwt as string, { mode: 0o600 })));
    } else {
      const renew = ['edge', 'create', 'enrollment', 'ott', name, '--jwt-output-file', jwtShown];
      const drop = typeof ott?.id === 'string' ? [['edge', 'delete', 'enrollment', '--', ott.id]] : [];
      steps.push(...drop, renew, enrollShown);
      work.push(() =>
        enrollTo(admin, req.outDir, name, file, async (jwt) => {
          for (const d of drop) await admin.run(d);
          await admin.run([...renew.slice(0, -1), jwt]);
        }),
      );
    }
  }
  if (steps.length === 0) return { what, action: 'keep', commands: [] };
  return {
    what,
    action: 'update',
    commands: steps,
    apply: async () => {
      for (const w of work) await w();
    },
  };
}

/**
 * Reads the network and returns the steps that bring it to what `req` asks for. With `assumeEmpty`
 * (a dry run that cannot reach the controller) every step is a create.
 */
export async function planZitiSetup(admin: ZitiAdmin, req: ZitiSetupRequest, opts: { assumeEmpty?: boolean } = {}): Promise<SetupPlan> {
  checkSetupRequest(req);
  const now = opts.assumeEmpty ? NOTHING : await readCurrent(admin, req);
  const n = setupNames(req.service);
  const idOf = (list: ZitiEntity[]) => (name: string) => byName(list, name)?.id;
  const steps: SetupStep[] = [];

  const hostData = { protocol: 'tcp', address: '127.0.0.1', port: req.hostPort };
  const interceptData = { protocols: ['tcp'], addresses: [n.interceptAddress], portRanges: [{ low: req.hostPort, high: req.hostPort }] };
  for (const [name, type, data, about] of [
    [n.hostConfig, 'host.v1', hostData, `tcp 127.0.0.1:${req.hostPort}`],
    [n.interceptConfig, 'intercept.v1', interceptData, `${n.interceptAddress}:${req.hostPort}`],
  ] as const) {
    const existing = byName(now.configs, name);
    const typeName = (existing?.configType as { name?: unknown } | undefined)?.name;
    if (existing && typeName !== type) {
      throw new ZitiAdminError(`config ${name} exists with type ${String(typeName)}, not ${type}; delete or rename it (ziti edge delete config ${name})`);
    }
    const json = JSON.stringify(data);
    steps.push(
      entityStep(admin, `config ${name} (${type}: ${about})`, existing, (e) => sameJson(e.data, data), ['edge', 'create', 'config', name, type, json], ['edge', 'update', 'config', name, '--data', json]),
    );
  }

  const configs = [n.hostConfig, n.interceptConfig];
  const configIds = configs.map(idOf(now.configs));
  steps.push(
    entityStep(
      admin,
      `service ${req.service} (configs ${configs.join(', ')})`,
      byName(now.services, req.service),
      (e) => configIds.every((id) => id !== undefined) && sameSet(strings(e.configs), configIds as string[]),
      ['edge', 'create', 'service', req.service, '--configs', configs.join(',')],
      ['edge', 'update', 'service', req.service, '--configs', configs.join(',')],
    ),
  );

  const unknown = opts.assumeEmpty === true;
  steps.push(identityStep(admin, req, req.box, n.hostsAttribute, byName(now.identities, req.box), unknown));
  for (const laptop of req.laptops) steps.push(identityStep(admin, req, laptop, n.clientsAttribute, byName(now.identities, laptop), unknown));

  const serviceId = idOf(now.services);
  for (const [name, type, attribute] of [
    [n.bindPolicy, 'Bind', n.hostsAttribute],
    [n.dialPolicy, 'Dial', n.clientsAttribute],
  ] as const) {
    const existing = byName(now.servicePolicies, name);
    if (existing && existing.type !== type) {
      throw new ZitiAdminError(`service policy ${name} exists with type ${String(existing.type)}, not ${type}; delete or rename it (ziti edge delete service-policy ${name})`);
    }
    const roles = ['--service-roles', `@${req.service}`, '--identity-roles', `#${attribute}`];
    steps.push(
      entityStep(
        admin,
        `service-policy ${name} (${type} ${req.service} → #${attribute})`,
        existing,
        (e) => sameRoles(e.serviceRoles, [`@${req.service}`], serviceId) && sameRoles(e.identityRoles, [`#${attribute}`], () => undefined),
        ['edge', 'create', 'service-policy', name, type, ...roles],
        ['edge', 'update', 'service-policy', name, ...roles],
      ),
    );
  }

  const routers = req.edgeRouterRoles.join(',');
  const routerIds = idOf(now.edgeRouters);
  const identityRoles = [`#${n.hostsAttribute}`, `#${n.clientsAttribute}`];
  steps.push(
    entityStep(
      admin,
      `edge-router-policy ${n.routerPolicy} (${identityRoles.join(', ')} → routers ${routers})`,
      byName(now.routerPolicies, n.routerPolicy),
      (e) => sameRoles(e.edgeRouterRoles, req.edgeRouterRoles, routerIds) && sameRoles(e.identityRoles, identityRoles, () => undefined),
      ['edge', 'create', 'edge-router-policy', n.routerPolicy, '--edge-router-roles', routers, '--identity-roles', identityRoles.join(',')],
      ['edge', 'update', 'edge-router-policy', n.routerPolicy, '--edge-router-roles', routers, '--identity-roles', identityRoles.join(',')],
    ),
  );
  steps.push(
    entityStep(
      admin,
      `service-edge-router-policy ${n.serviceRouterPolicy} (${req.service} → routers ${routers})`,
      byName(now.serviceRouterPolicies, n.serviceRouterPolicy),
      (e) => sameRoles(e.edgeRouterRoles, req.edgeRouterRoles, routerIds) && sameRoles(e.serviceRoles, [`@${req.service}`], serviceId),
      ['edge', 'create', 'service-edge-router-policy', n.serviceRouterPolicy, '--edge-router-roles', routers, '--service-roles', `@${req.service}`],
      ['edge', 'update', 'service-edge-router-policy', n.serviceRouterPolicy, '--edge-router-roles', routers, '--service-roles', `@${req.service}`],
    ),
  );

  const warnings: string[] = [];
  if (!opts.assumeEmpty) {
    const matching = now.edgeRouters.filter((r) => routerMatches(r, req.edgeRouterRoles));
    if (matching.length === 0) {
      warnings.push(`no edge router matches ${routers} yet: nothing can connect until one does (ziti edge list edge-routers)`);
    } else if (!matching.some((r) => r.isOnline === true)) {
      warnings.push(`no edge router matching ${routers} is online (${matching.map((r) => r.name).join(', ')}): nothing can connect until one is`);
    }
  }

  const files: Record<string, string> = {};
  for (const id of [req.box, ...req.laptops]) files[id] = join(req.outDir, `${id}.json`);
  return { steps, files, warnings };
}

function routerMatches(router: ZitiEntity, roles: string[]): boolean {
  const attributes = strings(router.roleAttributes);
  return roles.some((r) => r === '#all' || (r.startsWith('#') && attributes.includes(r.slice(1))) || r === `@${router.name}` || r === `@${router.id}`);
}

/** Runs the plan's steps in order; stops at the first failure (what was done stays done, and a rerun goes on from there). */
export async function applyZitiSetup(plan: SetupPlan, onStep: (step: SetupStep) => void): Promise<void> {
  for (const step of plan.steps) {
    if (step.apply) await step.apply();
    onStep(step);
  }
}

/** One `ziti` command as a user would type it in sh. */
export function shellCommand(args: string[]): string {
  if (args[0]?.startsWith('#')) return args.join(' ');
  return ['ziti', ...args].map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}
