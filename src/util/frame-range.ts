/**
 * Frame ranges as the CLI takes them (`--frames a:b`): 0-based, first included, end excluded, like a
 * Python slice; `a:` runs to the last frame, `:b` starts at 0, and a lone `a` is that one frame.
 */
import { UserError } from './errors.js';

/** Parses `a:b`, `a:`, `:b` or `a` into [first, end); end is undefined for `a:` (to the last frame). */
export function parseFrameRange(text: string, option = '--frames'): [number, number | undefined] {
  const match = /^\s*(\d*)\s*(:?)\s*(\d*)\s*$/.exec(text);
  if (match === null || (match[1] === '' && match[3] === '' && match[2] === '')) {
    throw new UserError(
      `expected a frame range a:b (0-based, first included, end excluded), got '${text}'`,
      undefined,
      option,
    );
  }
  const first = match[1] === '' ? 0 : Number(match[1]);
  if (match[2] === '') return [first, first + 1];
  const end = match[3] === '' ? undefined : Number(match[3]);
  if (end !== undefined && end <= first)
    throw new UserError(`empty frame range '${text}'`, undefined, option);
  return [first, end];
}

/** A parsed range checked against a file of `total` frames; an open end becomes `total`. */
export function frameRangeWithin(
  text: string,
  total: number,
  file: string,
  option = '--frames',
): [number, number] {
  const [first, openEnd] = parseFrameRange(text, option);
  const end = openEnd ?? total;
  if (first >= end || end > total)
    throw new UserError(`${option} ${text} is empty or past the last frame (${total} frames)`, file);
  return [first, end];
}
