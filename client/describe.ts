// One-line sentences about a loop, shared by the commands that print them.

import { oneLine } from '../agents/safe-text.js';
import type { LoopEnd } from './loop-feed.js';

/** "loop feature-3f2a completed (iteration 3): all stories pass after 3 iterations" */
export function describeEnd(loopId: string, end: LoopEnd): string {
  return `loop ${loopId} ${end.status} (iteration ${end.iteration})${end.reason ? `: ${oneLine(end.reason)}` : ''}`;
}
