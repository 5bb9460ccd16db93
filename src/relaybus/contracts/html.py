"""A single readable HTML page from an AsyncAPI document of :mod:`relaybus.contracts.asyncapi`.

A table of contents; the servers and channels; one section per method with an example call
(command line, Python, and the body on the wire) and its schemas; one per notification; the
failure; the types. Every ``$ref`` in a schema is a link to the section it names.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

from relaybus.contracts.examples import example

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:62rem;margin:2rem auto;padding:0 1rem;color:#222}
code,pre{background:#f4f4f4;border-radius:4px}pre{padding:.6rem;overflow:auto;font-size:.85rem}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ddd;padding:.3rem .5rem;
text-align:left;vertical-align:top}h2{border-bottom:2px solid #ddd}.op{margin-bottom:2rem}
nav ul{columns:2}a{color:#0550ae}
"""
_SCHEMA_REF = re.compile(r"&quot;#/components/schemas/([A-Za-z0-9_.\-]+)&quot;")


def _e(value: Any) -> str:
    return html.escape(str(value))


def _anchor(kind: str, name: str) -> str:
    return f"{kind}-" + re.sub(r"[^A-Za-z0-9_.\-]", "_", name)


def _schema(schema: Any) -> str:
    """A schema as JSON, each ``$ref`` a link to the type's section."""
    text = _e(json.dumps(schema, indent=2, ensure_ascii=False))
    return "<pre>" + _SCHEMA_REF.sub(
        lambda m: f"<a href='#{_anchor('schema', m.group(1))}'>&quot;#/components/schemas/"
                  f"{m.group(1)}&quot;</a>", text) + "</pre>"


def _schema_name(payload: dict[str, Any]) -> str:
    """The components/schemas name an envelope's oslo.message decodes to."""
    ref = payload["properties"]["oslo.message"]["contentSchema"]["$ref"]
    return str(ref.rsplit("/", 1)[1])


def _shell(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


def _example_call(document: dict[str, Any], op: dict[str, Any], request: dict[str, Any],
                  args: dict[str, Any]) -> str:
    """The command line and Python that call this method, and the body they send."""
    extension = document.get("x-relaybus", {})
    topic, exchange = extension.get("topic", ""), extension.get("exchange")
    namespace = op.get("x-relaybus-namespace")
    version = op.get("x-relaybus-version", "1.0")
    method = op["title"]
    flags = []
    if args:
        flags.append(f"--args {_shell(json.dumps(args, ensure_ascii=False))}")
    if namespace:
        flags.append(f"--namespace {namespace}")
    flags.append(f"--version {version}")
    if exchange and exchange != "openstack":
        flags.append(f"--exchange {exchange}")
    cli = " ".join(["relaybus call", topic, method, *flags])
    target = [f"topic={topic!r}"]
    if exchange and exchange != "openstack":
        target.append(f"exchange={exchange!r}")
    if namespace:
        target.append(f"namespace={namespace!r}")
    target.append(f"version={version!r}")
    kwargs = "".join(f", {name}={value!r}" for name, value in args.items())
    python = (f"client = bus.rpc_client(relaybus.Target({', '.join(target)}))\n"
              f"result = await client.call({{}}, {method!r}{kwargs})")
    wire = json.dumps(request, indent=2, ensure_ascii=False)
    return (f"<h4>Example call</h4><pre>{_e(cli)}</pre><pre>{_e(python)}</pre>"
            f"<p>The body it sends (AMQP: exchange <code>{_e(exchange)}</code>, routing key "
            f"<code>{_e(topic)}</code>):</p><pre>{_e(wire)}</pre>")


def render_html(document: dict[str, Any]) -> str:
    """Render the document: contents, topology, methods, notifications, failure, types."""
    info = document["info"]
    messages = document["components"]["messages"]
    schemas = document["components"]["schemas"]
    receive = {k: op for k, op in document["operations"].items()
               if op["action"] == "receive" and not k.startswith("nats_")}
    emit = [op for k, op in document["operations"].items()
            if op["action"] == "send" and not k.startswith("nats_")]
    types = [name for name in schemas if not name.startswith(
        ("request.", "reply.", "notification.", "relaybus."))]

    toc = ["<nav><h2>Contents</h2><ul>", "<li><a href='#servers'>Servers</a></li>",
           "<li><a href='#channels'>Channels</a></li>"]
    toc += [f"<li>method <a href='#{_anchor('method', k)}'><code>{_e(op['title'])}</code></a>"
            f"</li>" for k, op in receive.items()]
    for op in emit:
        name = messages[op["messages"][0]["$ref"].rsplit("/", 1)[1]]["name"]
        toc.append(f"<li>notification <a href='#{_anchor('event', name)}'><code>{_e(name)}"
                   f"</code></a></li>")
    toc.append("<li><a href='#failure'>Failure</a></li>")
    toc += [f"<li>type <a href='#{_anchor('schema', n)}'><code>{_e(n)}</code></a></li>"
            for n in types]
    toc.append("</ul></nav>")

    parts = [(f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(info['title'])}"
              f"</title><style>{_STYLE}</style></head><body>"),
             f"<h1>{_e(info['title'])} <small>v{_e(info['version'])}</small></h1>",
             f"<p>{_e(info.get('description', ''))}</p>",
             (f"<p>AsyncAPI {_e(document['asyncapi'])}. Every body on the wire is an envelope "
             "whose <code>oslo.message</code> is the JSON text of the request, reply or "
             "notification shown here.</p>"), *toc,
             ("<h2 id='servers'>Servers</h2><table><tr><th>name</th><th>protocol</th>"
             "<th>host</th></tr>")]
    for name, server in document.get("servers", {}).items():
        parts.append(f"<tr><td>{_e(name)}</td><td>{_e(server['protocol'])}</td>"
                     f"<td><code>{_e(server['host'])}</code></td></tr>")
    parts.append("</table><h2 id='channels'>Channels</h2><table><tr><th>channel</th>"
                 "<th>address</th><th>meaning</th></tr>")
    for name, channel in document["channels"].items():
        address = channel.get("address") or "(the request's _reply_q)"
        parts.append(f"<tr><td>{_e(name)}</td><td><code>{_e(address)}</code></td>"
                     f"<td>{_e(channel.get('title', ''))}. "
                     f"{_e(channel.get('description', ''))}</td></tr>")
    parts.append("</table><h2>Methods</h2>")
    for key, op in receive.items():
        message = messages[op["messages"][0]["$ref"].rsplit("/", 1)[1]]
        request_name = _schema_name(message["payload"])
        request = schemas[request_name]
        reply_message = messages[op["reply"]["messages"][0]["$ref"].rsplit("/", 1)[1]]
        reply_name = _schema_name(reply_message["payload"])
        args = example(request["properties"]["args"], schemas) or {}
        wire = message.get("examples", [{}])[0].get("payload", {})
        namespace = op.get("x-relaybus-namespace") or "(default)"
        parts.append(
            f"<div class='op' id='{_anchor('method', key)}'><h3><code>{_e(op['title'])}"
            f"</code></h3><p>namespace {_e(namespace)}, version "
            f"{_e(op['x-relaybus-version'])}</p><p>{_e(op.get('description', ''))}</p>"
            f"{_example_call(document, op, wire, args)}"
            f"<h4>Arguments</h4>{_schema(request['properties']['args'])}"
            f"<h4>Result</h4>{_schema(schemas[reply_name]['properties']['result'])}"
            f"<p>Request: <a href='#{_anchor('schema', request_name)}'>{_e(request_name)}</a>;"
            f" reply: <a href='#{_anchor('schema', reply_name)}'>{_e(reply_name)}</a> or the "
            f"<a href='#failure'>failure</a>.</p></div>")
    if emit:
        parts.append("<h2>Notifications</h2>")
        for op in emit:
            message = messages[op["messages"][0]["$ref"].rsplit("/", 1)[1]]
            body_name = _schema_name(message["payload"])
            payload = schemas[body_name]["properties"]["payload"]
            sample = example(payload, schemas)
            parts.append(
                f"<div class='op' id='{_anchor('event', message['name'])}'><h3><code>"
                f"{_e(message['name'])}</code></h3><p>{_e(message['summary'])}</p>"
                f"<h4>Example</h4><pre>{_e(_notify_example(message, sample))}</pre>"
                f"<h4>Payload</h4>{_schema(payload)}<p>Notification: <a href='#"
                f"{_anchor('schema', body_name)}'>{_e(body_name)}</a></p></div>")
    parts.append(f"<h2 id='failure'>Failure</h2><p>{_e(messages['failure']['description'])}"
                 f"</p>{_schema(schemas['relaybus.failure'])}")
    parts.append("<h2>Types</h2>")
    for name, schema in schemas.items():
        parts.append(f"<h3 id='{_anchor('schema', name)}'><code>{_e(name)}</code></h3>"
                     f"{_schema(schema)}")
    parts.append("</body></html>")
    return "\n".join(parts)


def _notify_example(message: dict[str, Any], payload: Any) -> str:
    priority = message["summary"].split(" ", 1)[0].lower()
    return (f"relaybus notify {message['name']} --priority {priority} "
            f"--payload {_shell(json.dumps(payload, ensure_ascii=False))}")
