import { readFileSync } from 'node:fs';

/**
 * A mistake in what the user gave us (a file, a path, an option): reported as one line naming the
 * file and the field, with a non-zero exit and no stack trace. Anything else that escapes is a bug.
 */
export class UserError extends Error {
  constructor(
    message: string,
    /** File the problem is in, when there is one; printed first. */
    readonly file?: string,
    /** Where in the file: `line 12`, `field clen`, `dataset /entry_1/data_1/data`. */
    readonly where?: string,
  ) {
    super(message);
    this.name = 'UserError';
  }

  /** The one line a person reads: `FILE: line 12: what is wrong`. */
  toLine(): string {
    return [this.file, this.where, this.message]
      .filter((part) => part !== undefined && part !== '')
      .join(': ');
  }
}

/** Throws a UserError unless `condition` holds; for validating input with a clear message. */
export function check(condition: unknown, message: string, file?: string, where?: string): asserts condition {
  if (!condition) throw new UserError(message, file, where);
}

/**
 * A file the user named, read whole; a missing or unreadable one is a UserError naming it (`F: no
 * such file`, `F: cannot read (EACCES)`). Text with an encoding, bytes without.
 */
export function readUserFile(path: string): Buffer;
export function readUserFile(path: string, encoding: BufferEncoding): string;
export function readUserFile(path: string, encoding?: BufferEncoding): string | Buffer {
  try {
    return encoding === undefined ? readFileSync(path) : readFileSync(path, encoding);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new UserError(code === 'ENOENT' ? 'no such file' : `cannot read (${code ?? 'error'})`, path);
  }
}
