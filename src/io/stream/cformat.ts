/**
 * printf-compatible number formatting and strict number parsing for CrystFEL streams.
 *
 * CrystFEL writes every number with C's printf (glibc). To write a stream byte-for-byte as CrystFEL
 * would, we reproduce `%.Nf`, `%+.Nf`, `%.Ne`, `%i` and field widths here, including glibc's quirks:
 * `-0.00` for negative zero, `nan`/`inf`, exact-tie rounding to even (JS `toFixed` rounds ties up),
 * full digits for huge values (JS `toFixed` switches to exponent notation at 1e21) and two-digit
 * exponents (`1.00e-08`, JS writes `1.00e-8`).
 */

/** `%.{decimals}f`. */
export function formatFixed(value: number, decimals: number): string {
  if (Number.isNaN(value)) return 'nan';
  if (value === Number.POSITIVE_INFINITY) return 'inf';
  if (value === Number.NEGATIVE_INFINITY) return '-inf';
  if (Object.is(value, -0)) return `-${(0).toFixed(decimals)}`;
  const magnitude = Math.abs(value);
  let text: string;
  if (magnitude >= 1e21) {
    // Doubles this large are integers, so BigInt holds them exactly; printf prints every digit.
    text = `${BigInt(magnitude).toString()}${decimals > 0 ? `.${'0'.repeat(decimals)}` : ''}`;
  } else {
    text = magnitude.toFixed(decimals);
    if (isExactTie(magnitude, decimals) && isOddLastDigit(text)) text = decrementLastDigit(text);
  }
  return value < 0 ? `-${text}` : text;
}

/** `%+.{decimals}f`: a sign always, `+0.0000000` for zero. */
export function formatSignedFixed(value: number, decimals: number): string {
  const text = formatFixed(value, decimals);
  return text.startsWith('-') ? text : `+${text}`;
}

/**
 * `%.{decimals}e`. Exact ties round half up here (glibc rounds them to even); streams never hold
 * such values for the `%e` fields (beam divergence and bandwidth, residuals).
 */
export function formatExponent(value: number, decimals: number): string {
  if (Number.isNaN(value)) return 'nan';
  if (value === Number.POSITIVE_INFINITY) return 'inf';
  if (value === Number.NEGATIVE_INFINITY) return '-inf';
  const negative = value < 0 || Object.is(value, -0);
  const text = Math.abs(value).toExponential(decimals);
  const e = text.indexOf('e');
  const exponent = Number(text.slice(e + 1));
  const digits = String(Math.abs(exponent)).padStart(2, '0');
  return `${negative ? '-' : ''}${text.slice(0, e)}e${exponent < 0 ? '-' : '+'}${digits}`;
}

/** `%i` for a value that must be an integer. */
export function formatInt(value: number): string {
  if (!Number.isInteger(value)) throw new Error(`expected an integer, got ${value}`);
  return Object.is(value, -0) ? '0' : String(value);
}

/** Right-aligns `text` in `width` columns, as printf's `%{width}...` does (never truncates). */
export function padStart(text: string, width: number): string {
  return text.length >= width ? text : ' '.repeat(width - text.length) + text;
}

const POWERS_OF_TWO = Array.from({ length: 32 }, (_, i) => 2 ** i);

/** True when `x * 10^decimals` lies exactly half way between two integers (see formatFixed). */
function isExactTie(x: number, decimals: number): boolean {
  // x*10^d = k + 1/2 with x a binary fraction forces x = j / 2^(d+1) with j odd; the product by a
  // power of two is exact, so this test is exact (a non-integer product leaves a fractional remainder).
  return (x * (POWERS_OF_TWO[decimals + 1] ?? 2 ** (decimals + 1))) % 2 === 1;
}

function isOddLastDigit(text: string): boolean {
  return (text.charCodeAt(text.length - 1) - 48) % 2 === 1;
}

/** `0.13` -> `0.12`: the even neighbour of a tie that toFixed rounded up. */
function decrementLastDigit(text: string): string {
  const point = text.indexOf('.');
  const decimals = point < 0 ? 0 : text.length - point - 1;
  const units = BigInt(text.replace('.', '')) - 1n;
  const digits = units.toString().padStart(decimals + 1, '0');
  return decimals === 0 ? digits : `${digits.slice(0, -decimals)}.${digits.slice(-decimals)}`;
}

const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const INTEGER = /^[+-]?\d+$/;

/**
 * A number as C's `%f`/`strtod` reads one from a stream, strictly: decimal or exponent notation, or
 * `nan`/`inf` (printf writes those for non-finite values). Anything else is `undefined`.
 */
export function parseCNumber(token: string): number | undefined {
  if (DECIMAL.test(token)) return Number(token);
  switch (token.toLowerCase()) {
    case 'nan':
    case '-nan':
    case '+nan':
      return Number.NaN;
    case 'inf':
    case '+inf':
    case 'infinity':
    case '+infinity':
      return Number.POSITIVE_INFINITY;
    case '-inf':
    case '-infinity':
      return Number.NEGATIVE_INFINITY;
    default:
      return undefined;
  }
}

/** A 32-bit signed integer written with `%i`, strictly; `undefined` otherwise. */
export function parseCInt(token: string): number | undefined {
  if (!INTEGER.test(token)) return undefined;
  const value = Number(token) + 0; // `+ 0` turns -0 into 0: Int32Array cannot hold -0 either
  return value >= -2147483648 && value <= 2147483647 ? value : undefined;
}

/** Equality that treats NaN as equal to NaN and tells -0 from 0 (what matters for reprinting). */
export function sameNumber(a: number, b: number): boolean {
  return Object.is(a, b);
}
