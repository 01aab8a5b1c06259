// Parses an AsyncAPI document with @asyncapi/parser (found through NODE_PATH) and exits
// non-zero if the parser reports any error. Usage: node asyncapi-validate.cjs FILE|URL
'use strict';
const fs = require('fs');
const { Parser, DiagnosticSeverity } = require('@asyncapi/parser');

async function main() {
  const where = process.argv[2];
  const text = /^https?:\/\//.test(where)
    ? await (await fetch(where)).text()
    : fs.readFileSync(where, 'utf8');
  const { document, diagnostics } = await new Parser().parse(text, { source: where });
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
  for (const d of diagnostics) {
    const level = d.severity === DiagnosticSeverity.Error ? 'error' : 'warning';
    console.error(`${level}: ${d.code}: ${d.message} at ${JSON.stringify(d.path)}`);
  }
  if (!document || errors.length > 0) {
    console.error(`${where}: INVALID (${errors.length} errors)`);
    process.exit(1);
  }
  const channels = document.channels().length;
  const messages = document.components().messages().length;
  console.log(`${where}: valid AsyncAPI ${document.version()} (${channels} channels, ${messages} messages)`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
