// After tsc: make the bins executable (tsc does not keep modes).
import { chmodSync, existsSync } from 'node:fs';
for (const bin of ['dist/cli/ralph.js', 'dist/cli/git-remote-ralph.js', 'dist/hooks/pre-receive.js', 'dist/hooks/post-receive.js']) {
  if (existsSync(bin)) chmodSync(bin, 0o755);
}
