/**
 * The simulator in a process of its own, driven by the orchestrator over the fork() IPC channel.
 *
 * Why not the simulator's CLI: the ledger check needs the simulator's exact billed total per key
 * (`control.billedNano`, a BigInt), which only the programmatic API exposes — its HTTP `/key` gives USD
 * as a float. Why not `startSimulator()` inside the orchestrator: the orchestrator is also the load
 * generator, and on a 2-core machine the simulator must not share an event loop with it. The IPC pipe
 * is idle while load runs, so it costs the simulator nothing on the hot path.
 */
import { startSimulator } from "@wattfare/openrouter-sim";
import type { SimReady, SimReply, SimRequest } from "./sim-protocol.js";

const sim = await startSimulator({ host: "127.0.0.1", port: 0 });

function answer(request: SimRequest): string | null {
  switch (request.op) {
    case "createKey":
      return sim.control.createKey({ credits: request.credits, label: request.label });
    case "billedNano":
      return sim.control.billedNano(request.key).toString();
    case "setTiming":
      sim.control.setTiming(request.timing);
      return null;
  }
}

process.on("message", (message: SimRequest) => {
  let reply: SimReply;
  try {
    reply = { id: message.id, ok: true, value: answer(message) };
  } catch (error) {
    reply = { id: message.id, ok: false, error: error instanceof Error ? error.message : String(error) };
  }
  process.send?.(reply);
});
// The orchestrator went away (finished or crashed): never outlive it.
process.on("disconnect", () => {
  void sim.close().finally(() => process.exit(0));
});
const ready: SimReady = { ready: true, apiUrl: sim.apiUrl };
process.send?.(ready);
