/** Shared output helpers so every command prints JSON the same way for scripts. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, jsonReplacer, 2)}\n`);
}

/** Typed arrays and bigints are not JSON: print them as plain arrays and numbers. */
export function jsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return Number(value);
  if (ArrayBuffer.isView(value) && !(value instanceof DataView))
    return Array.from(value as unknown as ArrayLike<number>);
  return value;
}

/**
 * Rows of cells as aligned text columns, two spaces apart. `right` right-aligns every column but the
 * first (tables of numbers); trailing spaces are trimmed.
 */
export function formatTable(rows: string[][], align: 'left' | 'right' = 'left'): string {
  if (rows.length === 0) return '';
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length)));
  return rows
    .map((row) =>
      row
        .map((cell, column) =>
          align === 'right' && column > 0 ? cell.padStart(widths[column]) : cell.padEnd(widths[column]),
        )
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
