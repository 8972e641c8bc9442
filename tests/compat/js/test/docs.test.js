// docs/CLIENTS.md shows the code the suite runs: its JavaScript recipes are compared with the
// regions of lib/graph-client.js that every test builds its clients with.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

const source = readFileSync(new URL("../lib/graph-client.js", import.meta.url), "utf8");
const doc = readFileSync(new URL("../../../../docs/CLIENTS.md", import.meta.url), "utf8");

function sourceRegion(name) {
  const lines = source.split("\n");
  const start = lines.findIndex((l) => l.trim() === `// recipe: ${name}`);
  const end = lines.findIndex((l) => l.trim() === `// end recipe: ${name}`);
  assert.ok(start >= 0 && end > start, `markers of ${name} in lib/graph-client.js`);
  return lines.slice(start + 1, end).join("\n");
}

function docRecipe(name) {
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const m = new RegExp(`^<!-- recipe: ${escaped} -->\\n\`\`\`[a-z]*\\n([\\s\\S]*?)\\n\`\`\`$`, "m").exec(doc);
  assert.ok(m, `docs/CLIENTS.md has no recipe block ${name}`);
  return m[1];
}

for (const name of ["js-graph-client", "js-graph-client-plain-http"]) {
  test(`docs/CLIENTS.md quotes the ${name} recipe the suite runs`, () => {
    assert.equal(docRecipe(name), sourceRegion(name));
  });
}
