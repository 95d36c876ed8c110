#!/usr/bin/env node
// Entry point of the `vipmux` command. The exit code is set, not forced, so large output
// to a pipe (e.g. `vipmux config schema | jq`) is flushed before the process ends.
import { main } from "./program.ts";

process.exitCode = await main(process.argv);
