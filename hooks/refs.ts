// The `<old> <new> <ref>` lines git feeds pre-receive and post-receive on stdin.

export interface RefUpdate {
  old: string;
  new: string;
  ref: string;
  /** The branch name for refs/heads/*, else null. */
  branch: string | null;
  kind: 'create' | 'update' | 'delete';
}

const ZERO = /^0+$/;

export function parseRefLines(text: string): RefUpdate[] {
  const out: RefUpdate[] = [];
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]+) ([0-9a-f]+) (\S+)$/.exec(line.trim());
    if (!m) continue;
    const [, oldId, newId, ref] = m as unknown as [string, string, string, string];
    out.push({
      old: oldId,
      new: newId,
      ref,
      branch: ref.startsWith('refs/heads/') ? ref.slice('refs/heads/'.length) : null,
      kind: ZERO.test(oldId) ? 'create' : ZERO.test(newId) ? 'delete' : 'update',
    });
  }
  return out;
}

/** Branches ralph made for its loops (`ralph/<loop-id>`): never a reason to start a loop. */
export function isLoopBranch(branch: string): boolean {
  return branch.startsWith('ralph/');
}

export function readStdin(): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (d: string) => (text += d));
    process.stdin.on('end', () => resolve(text));
    process.stdin.on('error', reject);
  });
}
