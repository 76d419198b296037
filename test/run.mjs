#!/usr/bin/env node
// Runs every compiled test file (dist/test/**/*.test.js) in its own process, two at a time,
// each with a time limit, and ends with one line: "N passed, N failed[, N skipped]". A test counts as
// skipped when uvu skipped it or when it printed the skip mark (test/helpers/env.ts skipped():
// it returned early because something it needs is not here); uvu counts the latter as passed.
// Usage: node test/run.mjs [substring ...]   (only files whose path contains one of them)

import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(import.meta.url), '..', '..');
const testDir = join(root, 'dist', 'test');
const jobs = Number(process.env.RALPH_TEST_JOBS || 2);
const fileTimeoutMs = Number(process.env.RALPH_TEST_FILE_TIMEOUT_MS || 600_000);
const filters = process.argv.slice(2);

function findTests(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...findTests(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out.sort();
}

const files = findTests(testDir).filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
if (files.length === 0) {
  console.log('no test files matched');
  console.log('0 passed, 1 failed');
  process.exit(1);
}

let passed = 0;
let failed = 0;
let skipped = 0;
const failures = [];

function runFile(file) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, [file], {
      cwd: root,
      env: { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let output = '';
    // uvu prints its summary last but does not exit while handles stay open: a file whose summary
    // is out gets a few seconds to end by itself, then is ended (its counts still stand).
    let summaryTimer;
    child.stdout.on('data', (d) => {
      output += d;
      if (!summaryTimer && /Duration:/.test(output)) {
        summaryTimer = setTimeout(() => {
          output += `\n[test runner] ${relative(root, file)} left handles open after its summary: ended\n`;
          try {
            process.kill(-child.pid, 'SIGKILL');
          } catch {}
        }, 5000);
      }
    });
    child.stderr.on('data', (d) => (output += d));
    const timer = setTimeout(() => {
      output += `\n[test runner] ${relative(root, file)} took over ${fileTimeoutMs} ms: killed\n`;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {}
    }, fileTimeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(summaryTimer);
      // A test file's children must not outlive it.
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {}
      const total = Number(/Total:\s+(\d+)/.exec(output)?.[1] ?? NaN);
      const ok = Number(/Passed:\s+(\d+)/.exec(output)?.[1] ?? NaN);
      const marked = output.split('RALPH_TEST_SKIPPED:').length - 1;
      const skip = Number(/Skipped:\s+(\d+)/.exec(output)?.[1] ?? 0) + marked;
      const name = relative(root, file);
      const secs = ((Date.now() - started) / 1000).toFixed(1);
      if (Number.isNaN(total) || Number.isNaN(ok)) {
        failed += 1;
        failures.push(name);
        console.log(`✗ ${name} (${secs}s): no test summary (exit ${code ?? signal})\n${output}`);
      } else {
        passed += ok - marked;
        skipped += skip;
        const bad = total - ok + (code !== 0 && total === ok ? 1 : 0);
        failed += bad;
        if (bad > 0) {
          failures.push(name);
          console.log(`✗ ${name} (${secs}s): ${ok}/${total} passed, exit ${code ?? signal}\n${output}`);
        } else {
          console.log(`✓ ${name} (${secs}s): ${ok - marked} passed${skip ? `, ${skip} skipped` : ''}`);
          if (process.env.RALPH_TEST_VERBOSE) console.log(output);
        }
      }
      resolve();
    });
  });
}

const queue = [...files];
await Promise.all(
  Array.from({ length: Math.min(jobs, queue.length) }, async () => {
    while (queue.length > 0) await runFile(queue.shift());
  }),
);

if (failures.length > 0) console.log(`\nfailed files: ${failures.join(', ')}`);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 ? 1 : 0);
