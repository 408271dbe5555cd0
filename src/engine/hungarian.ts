/**
 * Optimal assignment (Hungarian / Kuhn-Munkres with potentials, shortest augmenting paths), O(n^2 m) for
 * an n x m cost matrix with n <= m. Rectangular: every row gets a distinct column. Costs are a dense
 * row-major Float64Array.
 */
export function solveAssignment(cost: Float64Array, rows: number, cols: number): Int32Array {
  if (rows > cols) {
    // Solve the transpose and invert the answer.
    const transposed = new Float64Array(rows * cols);
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < cols; c++) transposed[c * rows + r] = cost[r * cols + c];
    const colToRow = solveAssignment(transposed, cols, rows);
    const rowToCol = new Int32Array(rows).fill(-1);
    for (let c = 0; c < cols; c++) rowToCol[colToRow[c]] = c;
    return rowToCol;
  }
  // 1-based arrays as in the classic formulation; column 0 is the virtual start.
  const u = new Float64Array(rows + 1);
  const v = new Float64Array(cols + 1);
  const matchOfCol = new Int32Array(cols + 1); // row matched to column j (0 = none)
  const way = new Int32Array(cols + 1);
  const minv = new Float64Array(cols + 1);
  const used = new Uint8Array(cols + 1);
  for (let i = 1; i <= rows; i++) {
    matchOfCol[0] = i;
    let j0 = 0;
    minv.fill(Number.POSITIVE_INFINITY);
    used.fill(0);
    do {
      used[j0] = 1;
      const i0 = matchOfCol[j0];
      let delta = Number.POSITIVE_INFINITY;
      let j1 = 0;
      for (let j = 1; j <= cols; j++) {
        if (used[j]) continue;
        const reduced = cost[(i0 - 1) * cols + (j - 1)] - u[i0] - v[j];
        if (reduced < minv[j]) {
          minv[j] = reduced;
          way[j] = j0;
        }
        if (minv[j] < delta) {
          delta = minv[j];
          j1 = j;
        }
      }
      for (let j = 0; j <= cols; j++) {
        if (used[j]) {
          u[matchOfCol[j]] += delta;
          v[j] -= delta;
        } else {
          minv[j] -= delta;
        }
      }
      j0 = j1;
    } while (matchOfCol[j0] !== 0);
    do {
      const j1 = way[j0];
      matchOfCol[j0] = matchOfCol[j1];
      j0 = j1;
    } while (j0 !== 0);
  }
  const rowToCol = new Int32Array(rows).fill(-1);
  for (let j = 1; j <= cols; j++) if (matchOfCol[j] > 0) rowToCol[matchOfCol[j] - 1] = j - 1;
  return rowToCol;
}
