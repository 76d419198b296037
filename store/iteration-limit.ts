// How many iterations one loop may run at most: one bound for `ralph run`, a push
// (-o ralph.iterations), `ralph resume` and `ralph extend` alike, so a loop that one of them allowed
// is never refused by another (a loop extended to its limit can still be resumed).

export const MAX_ITERATIONS = 100_000;

/** "--max-iterations must be a whole number from 1 to 100000, got 0" */
export function iterationsRangeMessage(what: string, got: string): string {
  return `${what} must be a whole number from 1 to ${MAX_ITERATIONS}, got ${got}`;
}
