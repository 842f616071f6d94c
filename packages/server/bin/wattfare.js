#!/usr/bin/env node
// The `wattfare` CLI. TypeScript is compiled to ../dist by `npm run build` (tsc -b).
import { runCli } from "../dist/cli/index.js";

await runCli(process.argv);
