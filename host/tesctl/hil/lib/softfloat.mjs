// The RP2040 bootrom's soft-float ('SF') and soft-double ('SD') tables, performed in JS.
//
// Table layout: pico-sdk src/rp2_common/pico_bootrom/include/pico/bootrom/sf_table.h (one
// 32-bit function pointer every 4 bytes, the same offsets in both tables; the double table
// takes doubles in r0:r1 and r2:r3). Semantics: RP2040 datasheet 2.8.3 as pico-sdk's
// wrappers rely on them: + - * / sqrt and the int->float conversions round to nearest even;
// float->int conversions round toward -infinity and clamp; sqrt of a negative is
// -Infinity, ln of <= 0 is -Infinity. Denormals are flushed to zero on input and output, as
// the ROM library does. Arithmetic is exact: a float op done in double and rounded once to
// float (Math.fround) is correctly rounded (53 >= 2*24+2 bits). Transcendental functions use
// Math.* and are NOT bit-identical to the ROM's CORDIC code (a few ulp apart). NaN inputs give
// IEEE NaN results (the ROM treats NaN like infinity; pico-sdk's wrappers mask that anyway).
//
// Each service takes the argument registers r0..r3 (uint32) and returns the registers it
// sets ({r0, r1, r2, r3} as uint32, or {flags} for the flag-setting compare) and its cycles.

const f32 = new Float32Array(1);
const u32f = new Uint32Array(f32.buffer);
const f64 = new Float64Array(1);
const u32d = new Uint32Array(f64.buffer); // little-endian host: [lo, hi]

const I64_MAX = (1n << 63n) - 1n;
const I64_MIN = -(1n << 63n);
const U64_MAX = (1n << 64n) - 1n;

export function bitsToFloat(b) {
  u32f[0] = b;
  return f32[0];
}

export function floatToBits(x) {
  f32[0] = x;
  return u32f[0];
}

export function bitsToDouble(lo, hi) {
  u32d[0] = lo;
  u32d[1] = hi;
  return f64[0];
}

export function doubleToBits(x) {
  f64[0] = x;
  return [u32d[0], u32d[1]];
}

// ---- flush-to-zero ------------------------------------------------------------------
function fin(b) {
  // float argument: denormal -> signed zero
  if ((b & 0x7f800000) === 0) return (b & 0x80000000) ? -0 : 0;
  return bitsToFloat(b);
}

function din(lo, hi) {
  if ((hi & 0x7ff00000) === 0) return (hi & 0x80000000) ? -0 : 0;
  return bitsToDouble(lo, hi);
}

function fout(x) {
  const b = floatToBits(Math.fround(x));
  return { r0: (b & 0x7f800000) === 0 ? (b & 0x80000000) >>> 0 : b };
}

function dout(x) {
  const [lo, hi] = doubleToBits(x);
  if ((hi & 0x7ff00000) === 0) return { r0: 0, r1: (hi & 0x80000000) >>> 0 };
  return { r0: lo, r1: hi };
}

// ---- conversions toward integers ----------------------------------------------------
function floorClamp(x, lo, hi) {
  if (Number.isNaN(x)) return hi; // NaN: like +infinity
  const f = Math.floor(x);
  return f < lo ? lo : f > hi ? hi : f;
}

function toI32(x) {
  return { r0: floorClamp(x, -2147483648, 2147483647) >>> 0 };
}

function toU32(x) {
  return { r0: floorClamp(x, 0, 4294967295) >>> 0 };
}

function floorBig(x, lo, hi) {
  if (Number.isNaN(x)) return hi;
  if (x === Infinity) return hi;
  if (x === -Infinity) return lo;
  const v = BigInt(Math.floor(x));
  return v < lo ? lo : v > hi ? hi : v;
}

function big64(v) {
  const u = BigInt.asUintN(64, v);
  return { r0: Number(u & 0xffffffffn), r1: Number(u >> 32n) };
}

function pow2(n) {
  return Math.pow(2, n | 0);
}

// ---- conversions from integers --------------------------------------------------------
function reg64(lo, hi, signed) {
  const v = (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
  return signed ? BigInt.asIntN(64, v) : v;
}

/** BigInt -> nearest float (ties to even), exactly: no double rounding through 53 bits. */
export function bigToFloat(v) {
  const neg = v < 0n;
  let m = neg ? -v : v;
  const len = m.toString(2).length;
  if (len > 24) {
    const shift = BigInt(len - 24);
    let q = m >> shift;
    const rem = m & ((1n << shift) - 1n);
    const half = 1n << (shift - 1n);
    if (rem > half || (rem === half && (q & 1n))) q += 1n;
    m = q << shift;
  }
  const x = Number(m); // exact: at most 25 significant bits
  return neg ? -x : x;
}

// ---- compares ---------------------------------------------------------------------------
function cmp3(a, b) {
  if (a < b) return -1;
  if (a > b) return 1;
  if (a === b) return 0;
  return 1; // unordered (NaN): undefined in the ROM; say "greater"
}

function cmpFlags(a, b) {
  // Flags as a CMP of a with b would leave them for ordered operands (N V Z C).
  const c = cmp3(a, b);
  return { flags: { N: c < 0, Z: c === 0, C: c >= 0, V: false } };
}

const reg = (x) => ({ r0: x >>> 0 });

// ---- the tables ---------------------------------------------------------------------------
// [name, cycles, fn(r0, r1, r2, r3)]: order = table offset / 4.
// Cycles: approximate per call, the order of magnitude the RP2040 datasheet's ROM float
// timings give (single + - * / ~50-90, sqrt ~100, conversions ~20-60, transcendental
// ~300-500; double 2-5x); they stand in for the ROM code the core does not execute here.
export const FLOAT_FUNCS = [
  ['fadd', 70, (a, b) => fout(fin(a) + fin(b))],
  ['fsub', 75, (a, b) => fout(fin(a) - fin(b))],
  ['fmul', 60, (a, b) => fout(fin(a) * fin(b))],
  ['fdiv', 80, (a, b) => fout(fin(a) / fin(b))],
  ['fcmp_fast', 25, (a, b) => reg(cmp3(fin(a), fin(b)))],
  ['fcmp_fast_flags', 25, (a, b) => cmpFlags(fin(a), fin(b))],
  ['fsqrt', 100, (a) => { const x = fin(a); return fout(x < 0 ? -Infinity : Math.sqrt(x)); }],
  ['float2int', 30, (a) => toI32(fin(a))],
  ['float2fix', 35, (a, n) => toI32(fin(a) * pow2(n))],
  ['float2uint', 30, (a) => toU32(fin(a))],
  ['float2ufix', 35, (a, n) => toU32(fin(a) * pow2(n))],
  ['int2float', 30, (a) => fout(a | 0)],
  ['fix2float', 35, (a, n) => fout((a | 0) / pow2(n))],
  ['uint2float', 30, (a) => fout(a >>> 0)],
  ['ufix2float', 35, (a, n) => fout((a >>> 0) / pow2(n))],
  ['fcos', 450, (a) => fout(Math.cos(fin(a)))],
  ['fsin', 450, (a) => fout(Math.sin(fin(a)))],
  ['ftan', 550, (a) => fout(Math.tan(fin(a)))],
  ['fsincos', 600, (a) => { const x = fin(a); return { r0: fout(Math.sin(x)).r0, r1: fout(Math.cos(x)).r0 }; }],
  ['fexp', 400, (a) => fout(Math.exp(fin(a)))],
  ['fln', 400, (a) => { const x = fin(a); return fout(x <= 0 ? -Infinity : Math.log(x)); }],
  ['fcmp', 25, (a, b) => reg(cmp3(fin(a), fin(b)))],
  ['fatan2', 500, (y, x) => fout(Math.atan2(fin(y), fin(x)))],
  ['int642float', 60, (lo, hi) => fout(bigToFloat(reg64(lo, hi, true)))],
  ['fix642float', 65, (lo, hi, n) => fout(bigToFloat(reg64(lo, hi, true)) / pow2(n))],
  ['uint642float', 60, (lo, hi) => fout(bigToFloat(reg64(lo, hi, false)))],
  ['ufix642float', 65, (lo, hi, n) => fout(bigToFloat(reg64(lo, hi, false)) / pow2(n))],
  ['float2int64', 60, (a) => big64(floorBig(fin(a), I64_MIN, I64_MAX))],
  ['float2fix64', 65, (a, n) => big64(floorBig(fin(a) * pow2(n), I64_MIN, I64_MAX))],
  ['float2uint64', 60, (a) => big64(floorBig(fin(a), 0n, U64_MAX))],
  ['float2ufix64', 65, (a, n) => big64(floorBig(fin(a) * pow2(n), 0n, U64_MAX))],
  ['float2double', 25, (a) => dout(fin(a))],
];

export const DOUBLE_FUNCS = [
  ['dadd', 180, (a0, a1, b0, b1) => dout(din(a0, a1) + din(b0, b1))],
  ['dsub', 190, (a0, a1, b0, b1) => dout(din(a0, a1) - din(b0, b1))],
  ['dmul', 200, (a0, a1, b0, b1) => dout(din(a0, a1) * din(b0, b1))],
  ['ddiv', 350, (a0, a1, b0, b1) => dout(din(a0, a1) / din(b0, b1))],
  ['dcmp_fast', 40, (a0, a1, b0, b1) => reg(cmp3(din(a0, a1), din(b0, b1)))],
  ['dcmp_fast_flags', 40, (a0, a1, b0, b1) => cmpFlags(din(a0, a1), din(b0, b1))],
  ['dsqrt', 400, (a0, a1) => { const x = din(a0, a1); return dout(x < 0 ? -Infinity : Math.sqrt(x)); }],
  ['double2int', 50, (a0, a1) => toI32(din(a0, a1))],
  ['double2fix', 55, (a0, a1, n) => toI32(din(a0, a1) * pow2(n))],
  ['double2uint', 50, (a0, a1) => toU32(din(a0, a1))],
  ['double2ufix', 55, (a0, a1, n) => toU32(din(a0, a1) * pow2(n))],
  ['int2double', 40, (a) => dout(a | 0)],
  ['fix2double', 45, (a, n) => dout((a | 0) / pow2(n))],
  ['uint2double', 40, (a) => dout(a >>> 0)],
  ['ufix2double', 45, (a, n) => dout((a >>> 0) / pow2(n))],
  ['dcos', 2500, (a0, a1) => dout(Math.cos(din(a0, a1)))],
  ['dsin', 2500, (a0, a1) => dout(Math.sin(din(a0, a1)))],
  ['dtan', 3000, (a0, a1) => dout(Math.tan(din(a0, a1)))],
  ['dsincos', 3200, (a0, a1) => {
    const x = din(a0, a1);
    const s = dout(Math.sin(x));
    const c = dout(Math.cos(x));
    return { r0: s.r0, r1: s.r1, r2: c.r0, r3: c.r1 };
  }],
  ['dexp', 2500, (a0, a1) => dout(Math.exp(din(a0, a1)))],
  ['dln', 2500, (a0, a1) => { const x = din(a0, a1); return dout(x <= 0 ? -Infinity : Math.log(x)); }],
  ['dcmp', 40, (a0, a1, b0, b1) => reg(cmp3(din(a0, a1), din(b0, b1)))],
  ['datan2', 3000, (y0, y1, x0, x1) => dout(Math.atan2(din(y0, y1), din(x0, x1)))],
  ['int642double', 80, (lo, hi) => dout(Number(reg64(lo, hi, true)))],
  ['fix642double', 85, (lo, hi, n) => dout(Number(reg64(lo, hi, true)) / pow2(n))],
  ['uint642double', 80, (lo, hi) => dout(Number(reg64(lo, hi, false)))],
  ['ufix642double', 85, (lo, hi, n) => dout(Number(reg64(lo, hi, false)) / pow2(n))],
  ['double2int64', 80, (a0, a1) => big64(floorBig(din(a0, a1), I64_MIN, I64_MAX))],
  ['double2fix64', 85, (a0, a1, n) => big64(floorBig(din(a0, a1) * pow2(n), I64_MIN, I64_MAX))],
  ['double2uint64', 80, (a0, a1) => big64(floorBig(din(a0, a1), 0n, U64_MAX))],
  ['double2ufix64', 85, (a0, a1, n) => big64(floorBig(din(a0, a1) * pow2(n), 0n, U64_MAX))],
  ['double2float', 40, (a0, a1) => fout(din(a0, a1))],
];

export const TABLE_WORDS = 32; // SF_TABLE_V2_SIZE / 4
