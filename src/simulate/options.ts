/**
 * The simulator's run options, validated with zod: the CLI (or a script) hands over loosely typed
 * values (strings from the command line are accepted for numbers), and every problem becomes one
 * UserError naming the option as the user typed it (`--hit-rate: must be between 0 and 1`).
 */
import { z } from 'zod';
import { UserError } from '../util/errors.js';
import { type UnitCell, validateCell } from './cell.js';
import { presetNames } from './presets.js';

/** Option key -> the flag the user types, for messages. */
export const optionFlags: Record<string, string> = {
  frames: '--frames',
  seed: '--seed',
  outPath: '--out',
  streamPath: '--stream',
  hitRate: '--hit-rate',
  preset: '--preset',
  cell: '--cell',
  centering: '--centering',
  spaceGroup: '--space-group',
  photonEnergyEv: '--photon-energy-ev',
  clenM: '--clen-m',
  background: '--background',
  workers: '--workers',
  compression: '--gzip',
  maxPeaks: '--max-peaks',
  maxCrystals: '--max-crystals',
  fluenceScale: '--fluence-scale',
  truthMinSnr: '--truth-min-snr',
};

const number = (what: string) =>
  z.preprocess(
    (value) => (typeof value === 'string' && value.trim() !== '' ? Number(value) : value),
    z.number({ error: `must be ${what}` }).refine(Number.isFinite, { error: `must be ${what}` }),
  );
const integer = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.preprocess(
    (value) => (typeof value === 'string' && value.trim() !== '' ? Number(value) : value),
    z
      .number({ error: `must be an integer from ${min}` })
      .int({ error: `must be an integer from ${min}` })
      .min(min, { error: `must be an integer from ${min}` })
      .max(max, { error: `must be at most ${max}` }),
  );

export const simulateOptionsSchema = z.object({
  frames: integer(1, 10_000_000),
  seed: integer(0, 2 ** 32 - 1).default(1),
  outPath: z.string({ error: 'is required' }).min(1, { error: 'is required' }),
  streamPath: z.string().min(1).optional(),
  hitRate: number('a number between 0 and 1')
    .refine((v) => v >= 0 && v <= 1, { error: 'must be between 0 and 1' })
    .default(0.5),
  preset: z
    .string()
    .refine((name) => presetNames.includes(name), {
      error: (issue) => `unknown preset '${issue.input}' (known: ${presetNames.join(', ')})`,
    })
    .default('thermolysin'),
  /** "a b c alpha beta gamma" in angstrom and degrees. */
  cell: z.string().optional(),
  centering: z.string().optional(),
  spaceGroup: z.string().optional(),
  photonEnergyEv: number('a photon energy in eV')
    .refine((v) => v > 0, { error: 'must be a positive energy in eV' })
    .optional(),
  /** May be negative: CrystFEL adds each panel's coffset (checked later: every panel must end up at z > 0). */
  clenM: number('a camera length in metres').optional(),
  background: z.enum(['none', 'water', 'heavy'], { error: 'must be none, water or heavy' }).optional(),
  workers: integer(1, 256).default(1),
  compression: integer(0, 9).default(0),
  maxPeaks: integer(1, 1_000_000).default(4096),
  maxCrystals: integer(1, 64).optional(),
  /** Multiplies the preset's fluence (weaker or stronger frames). */
  fluenceScale: number('a positive number')
    .refine((v) => v > 0, { error: 'must be positive' })
    .default(1),
  /**
   * The truth rule (render.ts): a spot gets a truth row and mask pixels when its expected integrated
   * signal reaches this many standard deviations of its noise. 3 (default) counts every spot that is
   * there in principle; the shipped model is trained to report spots of 8 or more, as expert finders do.
   */
  truthMinSnr: number('a positive number')
    .refine((v) => v > 0, { error: 'must be positive' })
    .optional(),
});

export type SimulateOptionsInput = z.input<typeof simulateOptionsSchema>;
export type SimulateOptions = z.output<typeof simulateOptionsSchema>;

/** Validates options; the first problem becomes a UserError naming its flag. */
export function parseSimulateOptions(raw: SimulateOptionsInput): SimulateOptions {
  const result = simulateOptionsSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0];
    const key = String(issue.path[0] ?? '');
    throw new UserError(issue.message, undefined, optionFlags[key] ?? key);
  }
  return result.data;
}

/** Parses `--cell "a b c al be ga"` (angstrom, degrees) and checks the cell can exist. */
export function parseCellText(text: string, centering: string): UnitCell {
  const parts = text
    .trim()
    .split(/[\s,]+/)
    .filter((part) => part !== '')
    .map(Number);
  if (parts.length !== 6 || parts.some((v) => !Number.isFinite(v))) {
    throw new UserError(
      `expected six numbers "a b c alpha beta gamma" (A, degrees), got '${text}'`,
      undefined,
      '--cell',
    );
  }
  const cell: UnitCell = {
    aA: parts[0],
    bA: parts[1],
    cA: parts[2],
    alphaDeg: parts[3],
    betaDeg: parts[4],
    gammaDeg: parts[5],
    centering,
  };
  validateCell(cell, '--cell');
  return cell;
}
