// Shared test helper: a stand-in OpenZiti "network" for the SDK backend (test/fixtures/ziti-sdk-standin,
// a test double of @openziti/ziti-sdk-nodejs 0.13.3 — the real SDK cannot be installed here).
//
//   const net = makeStandinNetwork(t.home, { daemon: { bind: ['svc'] }, client: { dial: ['svc'] }, intruder: {} });
//   net.identity('client')          // path of an enrolled-identity JSON file for that name
//   net.env                         // RALPH_ZITI_SDK_MODULE + RALPH_ZITI_STANDIN_DIR for child processes

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES } from './env.js';
import { makePki, type Pki } from './pki.js';

export const STANDIN_MODULE = join(FIXTURES, 'ziti-sdk-standin');
export const STANDIN_ZT_API = 'https://standin-controller.ralph.invalid:1280';

export interface Policy {
  dial?: string[];
  bind?: string[];
}

export interface StandinNetwork {
  dir: string;
  /** Environment that makes the SDK backend load the stand-in and join this network. */
  env: NodeJS.ProcessEnv;
  /** The identity file of a name given to makeStandinNetwork. */
  identity(name: string): string;
  /** Writes an identity file for a controller that does not exist (nothing ever answers it). */
  unreachableIdentity(name: string): string;
}

function identityJson(ztAPI: string, pki: Pki, name: string): { json: string; cert: string } {
  const { key, cert } = pki.issue(name);
  const json = JSON.stringify({ ztAPI, id: { cert: `pem:${cert}`, key: `pem:${key}`, ca: `pem:${pki.ca}` } }, null, 2);
  return { json, cert: `pem:${cert}` };
}

export function makeStandinNetwork(home: string, identities: Record<string, Policy>): StandinNetwork {
  const dir = join(home, 'zn');
  const idDir = join(home, 'identities');
  mkdirSync(dir, { recursive: true });
  mkdirSync(idDir, { recursive: true });
  const policy: { ztAPI: string; identities: Record<string, { cert: string; dial: string[]; bind: string[] }> } = {
    ztAPI: STANDIN_ZT_API,
    identities: {},
  };
  const files = new Map<string, string>();
  // Real keys and certificates from one CA: the hosts check every dialer's proof of identity.
  const pki = makePki(join(home, 'pki'), 'standin');
  for (const [name, p] of Object.entries(identities)) {
    const { json, cert } = identityJson(STANDIN_ZT_API, pki, name);
    policy.identities[name] = { cert, dial: p.dial ?? [], bind: p.bind ?? [] };
    const file = join(idDir, `${name}.json`);
    writeFileSync(file, json, { mode: 0o600 });
    files.set(name, file);
  }
  writeFileSync(join(dir, 'policy.json'), JSON.stringify(policy, null, 2));
  return {
    dir,
    env: { RALPH_ZITI_SDK_MODULE: STANDIN_MODULE, RALPH_ZITI_STANDIN_DIR: dir },
    identity(name) {
      const f = files.get(name);
      if (!f) throw new Error(`no stand-in identity ${name}`);
      return f;
    },
    unreachableIdentity(name) {
      const file = join(idDir, `${name}.json`);
      writeFileSync(file, identityJson('https://127.0.0.1:9/', pki, name).json, { mode: 0o600 });
      return file;
    },
  };
}

/** `bytes` deterministic pseudo-random bytes (the same on both ends of a transfer test). */
export function pattern(bytes: number): Buffer {
  const out = Buffer.alloc(bytes);
  let x = 0x9e3779b9;
  for (let i = 0; i + 4 <= bytes; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeUInt32LE(x >>> 0, i);
  }
  return out;
}
