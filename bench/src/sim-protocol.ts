/** Messages between the orchestrator and `sim-process.ts`. */

export interface SimTiming {
  ttftMs: number;
  interTokenMs: number;
  responseTokens: number;
}

export type SimRequest =
  | { id: number; op: "createKey"; credits: number; label: string }
  | { id: number; op: "billedNano"; key: string }
  | { id: number; op: "setTiming"; timing: SimTiming };

/** `value`: the key for createKey, the decimal nano-USD for billedNano, null for setTiming. */
export type SimReply =
  | { id: number; ok: true; value: string | null }
  | { id: number; ok: false; error: string };

export interface SimReady {
  ready: true;
  apiUrl: string;
}
