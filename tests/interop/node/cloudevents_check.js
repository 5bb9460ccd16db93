// Reads messages as a relaybus gateway sent them (JSON on stdin: a list of
// {"binding": "http" | "mqtt", "contentType": ..., "body": "<the bytes, as text>"}) and
// parses each with the official CloudEvents JavaScript SDK, strictly, then validates it.
// Prints a JSON list: {"ok": true, "event": {...attributes}} or {"ok": false, "error": ...}.
"use strict";
const { HTTP, MQTT } = require("cloudevents");

function parse(message) {
  if (message.binding === "mqtt") {
    const event = MQTT.toEvent({
      PUBLISH: { "Content Type": message.contentType },
      body: message.body, headers: {},
    }, true);
    return event;
  }
  return HTTP.toEvent({ headers: { "content-type": message.contentType }, body: message.body });
}

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  const results = JSON.parse(input).map((message) => {
    try {
      const event = parse(message);
      event.validate();
      return { ok: true, event: JSON.parse(JSON.stringify(event)) };
    } catch (error) {
      const details = error.errors ? ` ${JSON.stringify(error.errors)}` : "";
      return { ok: false, error: `${error.name}: ${error.message}${details}` };
    }
  });
  process.stdout.write(JSON.stringify(results));
});
