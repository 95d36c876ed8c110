#!/usr/bin/env node
// Entry point of the `vipmux` command.
import { main } from "./program.ts";

const code = await main(process.argv);
// `lab supervise` keeps running with its children; every other command exits with its code.
if (process.argv[2] !== "lab" || process.argv[3] !== "supervise") process.exit(code);
