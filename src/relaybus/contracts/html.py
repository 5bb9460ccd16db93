"""A single readable HTML page from an AsyncAPI document."""

from __future__ import annotations

import html
import json
from typing import Any

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
code,pre{background:#f4f4f4;border-radius:4px}pre{padding:.6rem;overflow:auto;font-size:.85rem}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ddd;padding:.3rem .5rem;
text-align:left;vertical-align:top}h2{border-bottom:2px solid #ddd}.op{margin-bottom:2rem}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _schema(schema: Any) -> str:
    return f"<pre>{_e(json.dumps(schema, indent=2, ensure_ascii=False))}</pre>"


def render_html(document: dict[str, Any]) -> str:
    """Render the document: topology, one section per method and per event, schemas."""
    info = document["info"]
    messages = document["components"]["messages"]
    parts = [(f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(info['title'])}"
              f"</title><style>{_STYLE}</style></head><body>"),
             f"<h1>{_e(info['title'])} <small>v{_e(info['version'])}</small></h1>",
             f"<p>{_e(info.get('description', ''))}</p>", "<h2>Where messages go</h2><table>",
             "<tr><th>channel</th><th>address</th><th>meaning</th></tr>"]
    for name, channel in document["channels"].items():
        parts.append(f"<tr><td>{_e(name)}</td><td><code>{_e(channel['address'])}</code></td>"
                     f"<td>{_e(channel.get('description', ''))}</td></tr>")
    parts.append("</table><h2>Methods</h2>")
    for key, op in document["operations"].items():
        if op["action"] != "receive":
            continue
        request = messages[f"{key}_request"]["payload"]["properties"]
        reply = messages[f"{key}_reply"]["payload"]["properties"]["result"]
        namespace = op.get("x-relaybus-namespace") or "(default)"
        parts.append(f"<div class='op'><h3><code>{_e(op['title'])}</code></h3>"
                     f"<p>namespace {_e(namespace)}, version {_e(op['x-relaybus-version'])}</p>"
                     f"<p>{_e(op.get('description', ''))}</p>"
                     f"<h4>Arguments</h4>{_schema(request['args'])}"
                     f"<h4>Result</h4>{_schema(reply)}</div>")
    events = [op for op in document["operations"].values() if op["action"] == "send"]
    if events:
        parts.append("<h2>Notifications</h2>")
        for op in events:
            message = messages[op["messages"][0]["$ref"].rsplit("/", 1)[1]]
            parts.append(f"<div class='op'><h3><code>{_e(message['name'])}</code></h3>"
                         f"<p>{_e(message['summary'])}</p>"
                         f"{_schema(message['payload']['properties']['payload'])}</div>")
    if document["components"]["schemas"]:
        parts.append("<h2>Types</h2>")
        for name, schema in document["components"]["schemas"].items():
            parts.append(f"<h3 id='{_e(name)}'>{_e(name)}</h3>{_schema(schema)}")
    parts.append("</body></html>")
    return "\n".join(parts)
