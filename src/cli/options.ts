/**
 * Numeric command-line values: a value that is not a number in range is a one-line UserError naming
 * the flag (`--eta must be an integer >= 2, got 'x'`), never NaN travelling on into the work.
 */
import { UserError } from '../util/errors.js';

function range(min: number): string {
  if (min === 0) return 'non-negative';
  if (min === 1) return 'positive';
  return '';
}

/** An integer at least `min`. */
export function integerOption(flag: string, text: string, min = 1): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isInteger(value) || value < min) {
    const what = range(min) === '' ? `an integer >= ${min}` : `a ${range(min)} integer`;
    throw new UserError(`${flag} must be ${what}, got '${text}'`);
  }
  return value;
}

/** A finite number at least `min`. */
export function numberOption(flag: string, text: string, min = 0): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value < min) {
    const what = min === 0 ? 'a non-negative number' : `a number >= ${min}`;
    throw new UserError(`${flag} must be ${what}, got '${text}'`);
  }
  return value;
}

/** A repetition rate in Hz (`--rate`): positive and finite; undefined when not given. */
export function rateOption(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (text.trim() === '' || !(value > 0) || !Number.isFinite(value))
    throw new UserError(`must be a positive rate in Hz, got '${text}'`, undefined, '--rate');
  return value;
}
