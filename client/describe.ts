// One-line sentences about a loop, shared by the commands that print them.

import type { LoopEnd } from './loop-feed.js';

function iterations(n: number): string {
  return `${n} iteration${n === 1 ? '' : 's'}`;
}

/** "loop feature-3f2a completed after 3 iterations: all stories pass" */
export function describeEnd(loopId: string, end: LoopEnd): string {
  return `loop ${loopId} ${end.status} after ${iterations(end.iteration)}${end.reason ? `: ${end.reason}` : ''}`;
}
