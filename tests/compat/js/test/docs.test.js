// docs/CLIENTS.md shows the code the suite runs: its JavaScript recipes are compared with the
// regions of the suite's files that the tests build their clients with.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

const doc = readFileSync(new URL("../../../../docs/CLIENTS.md", import.meta.url), "utf8");

const RECIPES = {
  "js-graph-client": "lib/graph-client.js",
  "js-graph-client-plain-http": "lib/graph-client-plain-http.js",
  "js-msal-node": "lib/msal-node.js",
  "js-azure-identity-proxy": "clients/azure-identity-proxy.js",
  "js-azure-identity-certificate": "clients/azure-identity-certificate.js",
};

function sourceRegion(name, file) {
  const lines = readFileSync(new URL(`../${file}`, import.meta.url), "utf8").split("\n");
  const start = lines.findIndex((l) => l.trim() === `// recipe: ${name}`);
  const end = lines.findIndex((l) => l.trim() === `// end recipe: ${name}`);
  assert.ok(start >= 0 && end > start, `markers of ${name} in ${file}`);
  return lines.slice(start + 1, end).join("\n");
}

function docRecipe(name) {
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const m = new RegExp(`^<!-- recipe: ${escaped} -->\\n\`\`\`[a-z]*\\n([\\s\\S]*?)\\n\`\`\`$`, "m").exec(doc);
  assert.ok(m, `docs/CLIENTS.md has no recipe block ${name}`);
  return m[1];
}

for (const [name, file] of Object.entries(RECIPES)) {
  test(`docs/CLIENTS.md quotes the ${name} recipe the suite runs (${file})`, () => {
    assert.equal(docRecipe(name), sourceRegion(name, file));
  });
}
