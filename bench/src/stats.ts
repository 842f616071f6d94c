/** Pure number helpers of the benchmark: percentiles, means, ratios and differences that tolerate gaps. */

/**
 * The q-quantile (0 ≤ q ≤ 1) of `values` by the nearest-rank method on a sorted copy: the smallest value
 * with at least q of the samples at or below it. Undefined for an empty sample.
 *
 * @example percentile([5, 1, 3, 2, 4], 0.5) // 3
 */
export function percentile(values: ArrayLike<number>, q: number): number | undefined {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`q must be in [0, 1], got ${q}`);
  if (values.length === 0) return undefined;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[rank - 1];
}

export function mean(values: ArrayLike<number>): number | undefined {
  if (values.length === 0) return undefined;
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i] as number;
  return sum / values.length;
}

/** The middle value (the mean of the two middle values for an even count). */
export function median(values: ArrayLike<number>): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = Float64Array.from(values).sort();
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** `a / b`, or undefined when either side is missing or `b` is not positive. */
export function ratio(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined || b === undefined || !(b > 0)) return undefined;
  return a / b;
}

/** `a - b` (e.g. a proxy's latency minus the simulator's), or undefined when either side is missing. */
export function added(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined || b === undefined) return undefined;
  return a - b;
}

/** Latency summary in milliseconds; every field is undefined for an empty sample. */
export interface LatencySummary {
  count: number;
  p50: number | undefined;
  p90: number | undefined;
  p99: number | undefined;
  mean: number | undefined;
  max: number | undefined;
}

export function summarize(values: ArrayLike<number>): LatencySummary {
  return {
    count: values.length,
    p50: percentile(values, 0.5),
    p90: percentile(values, 0.9),
    p99: percentile(values, 0.99),
    mean: mean(values),
    max: percentile(values, 1),
  };
}
