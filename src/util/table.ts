/** Plain-text tables for terminals and logs. */
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
