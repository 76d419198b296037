// placeholder until this command is written
import { UserError } from '../output.js';
export async function run(..._args: unknown[]): Promise<void> {
  throw new UserError('ralph logs is not built yet');
}
