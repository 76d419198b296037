// The prompt an agent gets each iteration: the task's prompt.md, or the built-in Ralph prompt,
// with the task's file paths filled in. Written to a file so the agent (and a human) can read it.

import { readFileSync, writeFileSync } from 'node:fs';
import type { TaskFiles } from './task.js';

export interface PromptContext {
  files: TaskFiles;
  workDir: string;
  iteration: number;
  maxIterations: number;
  loopId: string;
}

/** Placeholders a prompt.md may use; they are replaced with the loop's values. */
const PLACEHOLDERS: Record<string, (c: PromptContext) => string> = {
  PRD_PATH: (c) => c.files.prdPath,
  PROGRESS_PATH: (c) => c.files.progressPath,
  TASK_DIR: (c) => c.files.taskDir,
  WORK_DIR: (c) => c.workDir,
  ITERATION: (c) => String(c.iteration),
  MAX_ITERATIONS: (c) => String(c.maxIterations),
  LOOP_ID: (c) => c.loopId,
};

export const DEFAULT_PROMPT = `# Ralph agent instructions

You are an autonomous coding agent working on a software project in {{WORK_DIR}}.
You run in a loop: each run, you complete ONE user story, then stop. This is iteration
{{ITERATION}} of at most {{MAX_ITERATIONS}}.

## Your task

1. Read the PRD at {{PRD_PATH}}.
2. Read the progress log at {{PROGRESS_PATH}} (if it exists), starting with its
   "Codebase patterns" section: earlier iterations left you notes there.
3. Pick the highest-priority user story (lowest "priority" number) whose "passes" is false.
4. Implement that single story, and nothing else.
5. Run the project's quality checks (type check, lint, tests — whatever it uses). Fix what fails.
6. When the checks pass, commit ALL your changes with the message
   \`feat: [Story ID] - [Story Title]\`.
7. In {{PRD_PATH}}, set "passes": true for the story you completed.
8. Append a short report to {{PROGRESS_PATH}}: the story, what you changed, which files, and what
   you learned that the next iteration should know (add reusable lessons to "Codebase patterns").

## Rules

- One story per run. Keep changes small and focused; follow the code's existing patterns.
- Never commit code that fails the checks. Never mark a story passing that does not pass.

## Stop condition

After updating the PRD, check whether EVERY story now has "passes": true.
If so, print exactly:

<promise>COMPLETE</promise>

Otherwise end your response normally; the next iteration takes the next story.
`;

/** A note added under a project's own prompt.md, which may not know where the task files are. */
const CONTEXT_NOTE = `

---
(ralph) Task files for this run: PRD {{PRD_PATH}}, progress log {{PROGRESS_PATH}}.
Iteration {{ITERATION}} of at most {{MAX_ITERATIONS}}. When every story passes, print <promise>COMPLETE</promise>.
`;

export function fillPlaceholders(template: string, ctx: PromptContext): string {
  return template.replace(/\{\{([A-Z_]+)\}\}/g, (whole, name: string) => PLACEHOLDERS[name]?.(ctx) ?? whole);
}

export function renderPrompt(ctx: PromptContext): string {
  if (ctx.files.promptPath === null) return fillPlaceholders(DEFAULT_PROMPT, ctx);
  return fillPlaceholders(readFileSync(ctx.files.promptPath, 'utf8') + CONTEXT_NOTE, ctx);
}

/** Writes this iteration's prompt to `path` (private: it may quote the user's project) and returns it. */
export function writePromptFile(path: string, ctx: PromptContext): string {
  const text = renderPrompt(ctx);
  writeFileSync(path, text, { mode: 0o600 });
  return text;
}
