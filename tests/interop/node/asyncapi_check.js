// Parse AsyncAPI documents with the official @asyncapi/parser; print, per file, whether a
// document came out and the error diagnostics (severity 0), as one JSON object.
const fs = require('fs');
const { Parser } = require('@asyncapi/parser');

(async () => {
  const parser = new Parser();
  const report = {};
  for (const path of process.argv.slice(2)) {
    const { document, diagnostics } = await parser.parse(fs.readFileSync(path, 'utf8'));
    report[path] = {
      parsed: document !== undefined,
      version: document ? document.version() : null,
      errors: diagnostics.filter((d) => d.severity === 0)
        .map((d) => `${d.path.join('/')}: ${d.message}`),
    };
  }
  console.log(JSON.stringify(report));
})().catch((err) => { console.error(err); process.exit(1); });
