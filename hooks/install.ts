// Installs ralph's hooks into a bare repo: two tiny shell scripts that exec the hook programs with
// this very node and this very ralph. Rewritten when they differ (ralph moved or was upgraded).

import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const HOOK_NAMES = ['pre-receive', 'post-receive'] as const;

/** Quotes one word for sh: the only character that needs care inside '…' is ' itself. */
export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function hookScript(name: (typeof HOOK_NAMES)[number]): string {
  const program = fileURLToPath(new URL(`./${name}.js`, import.meta.url));
  return [
    '#!/bin/sh',
    `# Installed by ralph: hands the push to ralph's ${name} program. Rewritten by ralph; do not edit.`,
    `exec ${shQuote(process.execPath)} ${shQuote(program)} "$@"`,
    '',
  ].join('\n');
}

/** Writes the hooks into `<gitDir>/hooks` (atomically, 0755) unless they are already current. */
export function installHooks(gitDir: string): void {
  const dir = join(gitDir, 'hooks');
  mkdirSync(dir, { recursive: true });
  for (const name of HOOK_NAMES) {
    const path = join(dir, name);
    const text = hookScript(name);
    let current: string | undefined;
    try {
      current = readFileSync(path, 'utf8');
    } catch {}
    if (current === text) continue;
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, text, { mode: 0o755 });
    chmodSync(tmp, 0o755);
    renameSync(tmp, path);
  }
}
