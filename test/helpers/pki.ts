// Shared test helper: a small certificate authority made with the openssl CLI, so test identities
// hold real keys and certificates (the proof of identity in transport/ziti/auth.ts checks them).
//
//   const pki = makePki(dir);            // a root CA and an intermediate, as an OpenZiti network has
//   const { key, cert } = pki.issue('client');   // PEM private key, PEM chain (leaf + intermediate)
//   pki.ca                               // PEM bundle of both CAs (an identity's id.ca)

import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Pki {
  /** The CA bundle (root and intermediate), as an enrolled identity's `id.ca` holds it. */
  ca: string;
  /** A new key and a certificate for it signed by the intermediate; cert is the chain leaf first. */
  issue(name: string): { key: string; cert: string };
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function newKey(dir: string, name: string): string {
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`], dir);
  return `${name}.key`;
}

/** A root and an intermediate CA in `dir` (created); `issue` signs leaves with the intermediate. */
export function makePki(dir: string, label = 'test'): Pki {
  mkdirSync(dir, { recursive: true });
  const caExt = join(dir, 'ca.ext');
  writeFileSync(caExt, 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n');
  const leafExt = join(dir, 'leaf.ext');
  writeFileSync(leafExt, 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n');
  newKey(dir, 'root');
  openssl(['req', '-x509', '-new', '-key', 'root.key', '-subj', `/CN=${label}-root-ca`, '-days', '30', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', 'root.pem'], dir);
  newKey(dir, 'inter');
  openssl(['req', '-new', '-key', 'inter.key', '-subj', `/CN=${label}-intermediate-ca`, '-out', 'inter.csr'], dir);
  openssl(['x509', '-req', '-in', 'inter.csr', '-CA', 'root.pem', '-CAkey', 'root.key', '-CAcreateserial', '-days', '30', '-extfile', caExt, '-out', 'inter.pem'], dir);
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  const ca = read('root.pem') + read('inter.pem');
  return {
    ca,
    issue(name) {
      newKey(dir, name);
      openssl(['req', '-new', '-key', `${name}.key`, '-subj', `/CN=${name}`, '-out', `${name}.csr`], dir);
      openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'inter.pem', '-CAkey', 'inter.key', '-CAcreateserial', '-days', '30', '-extfile', leafExt, '-out', `${name}.pem`], dir);
      return { key: read(`${name}.key`), cert: read(`${name}.pem`) + read('inter.pem') };
    },
  };
}
