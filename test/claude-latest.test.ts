// The Claude Code suite (claude.test.ts) again, with the newest Claude Code (agent-clis.json's
// "claude-latest"): what Anthropic's installer, and npm on Node 22 or later, give a user today. npm on
// Node 20 picks 2.1.197 (the newest that says it runs there), which claude.test.ts drives.

process.env.RALPH_TEST_CLAUDE_PIN = 'claude-latest';
await import('./claude.test.js');
