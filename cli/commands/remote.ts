// placeholder until this command is written
import { UserError } from '../output.js';
const notYet = async (..._args: unknown[]): Promise<void> => {
  throw new UserError('ralph remote is not built yet');
};
export const add = notYet, list = notYet, remove = notYet, test = notYet;
