/** Progress lines of a bench run, on stderr (stdout carries the report). */
export const log = (line: string) => process.stderr.write(`bench: ${line}\n`);
