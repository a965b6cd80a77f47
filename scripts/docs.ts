import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { generatedDocs } from "./generatedDocs";

/**
 * `npm run docs`: writes the generated docs (the config reference, the per-UI folder table)
 * from the code. test/readme.test.ts fails while a written file differs from the code's.
 */
const ROOT = join(__dirname, "..");
for (const [file, text] of Object.entries(generatedDocs())) {
  mkdirSync(dirname(join(ROOT, file)), { recursive: true });
  writeFileSync(join(ROOT, file), text);
  console.log(`wrote ${file}`);
}
