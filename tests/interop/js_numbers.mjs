// Writes [python repr, JSON.stringify(Number(repr))] pairs: how JavaScript prints each number.
import { readFileSync, writeFileSync } from "node:fs";
const reprs = JSON.parse(readFileSync(process.argv[2], "utf8"));
writeFileSync(process.argv[3], JSON.stringify(reprs.map((r) => [r, JSON.stringify(Number(r))]), null, 0) + "\n");
