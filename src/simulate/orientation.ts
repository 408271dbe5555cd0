/**
 * Crystal orientations: rotations drawn uniformly on SO(3) and applied to bases stored as rows.
 */

/**
 * A rotation matrix (row-major 3x3) uniform on SO(3), from three uniform numbers by Shoemake's
 * method (Graphics Gems III, "Uniform random rotations"): the unit quaternion
 * (sqrt(1-u1) sin 2 pi u2, sqrt(1-u1) cos 2 pi u2, sqrt(u1) sin 2 pi u3, sqrt(u1) cos 2 pi u3)
 * is uniform on the 3-sphere, hence its rotation is Haar-uniform.
 */
export function randomRotation(random: () => number): Float64Array {
  const u1 = random();
  const u2 = random();
  const u3 = random();
  const r1 = Math.sqrt(1 - u1);
  const r2 = Math.sqrt(u1);
  const x = r1 * Math.sin(2 * Math.PI * u2);
  const y = r1 * Math.cos(2 * Math.PI * u2);
  const z = r2 * Math.sin(2 * Math.PI * u3);
  const w = r2 * Math.cos(2 * Math.PI * u3);
  return quaternionToMatrix(w, x, y, z);
}

/** Rotation matrix of the unit quaternion w + xi + yj + zk. */
export function quaternionToMatrix(w: number, x: number, y: number, z: number): Float64Array {
  return new Float64Array([
    1 - 2 * (y * y + z * z),
    2 * (x * y - z * w),
    2 * (x * z + y * w),
    2 * (x * y + z * w),
    1 - 2 * (x * x + z * z),
    2 * (y * z - x * w),
    2 * (x * z - y * w),
    2 * (y * z + x * w),
    1 - 2 * (x * x + y * y),
  ]);
}

/** Each row of `rows` rotated by `rotation` (row i becomes R . row_i). */
export function rotateRows(rotation: ArrayLike<number>, rows: ArrayLike<number>): Float64Array {
  const out = new Float64Array(9);
  for (let i = 0; i < 3; i++) {
    const x = rows[3 * i];
    const y = rows[3 * i + 1];
    const z = rows[3 * i + 2];
    for (let j = 0; j < 3; j++)
      out[3 * i + j] = rotation[3 * j] * x + rotation[3 * j + 1] * y + rotation[3 * j + 2] * z;
  }
  return out;
}
