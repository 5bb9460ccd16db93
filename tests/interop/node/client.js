#!/usr/bin/env node
// A relaybus RPC client written from docs/protocol alone (README.md, rabbit.md,
// conformance.md), with the amqplib package. It calls a server of the conformance contract,
// gets a remote error back, and receives a notification the server emits.
//
//   node client.js --url amqp://guest:guest@127.0.0.1:5672/ --topic T
//
// Prints one PASS/FAIL line per check and "N passed, M failed"; exits 0 when all pass.
'use strict';

const amqp = require('amqplib');
const crypto = require('crypto');

const CONTROL_EXCHANGE = 'openstack';
const TIMEOUT_MS = 10000;

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? process.argv[at + 1] : fallback;
}

const hex32 = () => crypto.randomBytes(16).toString('hex');

// rabbit.md "Publishing": the basic properties every message carries.
function properties(extra) {
  return Object.assign({contentType: 'application/json', contentEncoding: 'utf-8',
    deliveryMode: 2, priority: 0, headers: {}}, extra);
}

// README.md §1: the body is the 2.0 envelope around the message object's JSON text.
function envelope(message) {
  return Buffer.from(JSON.stringify({'oslo.version': '2.0', 'oslo.message': JSON.stringify(message)}));
}

function unwrap(body) {
  const outer = JSON.parse(body.toString('utf-8'));
  if (outer['oslo.version'] === undefined) return outer; // legacy 1.0: no envelope
  return JSON.parse(outer['oslo.message']);
}

class Client {
  constructor(channel, topic) {
    this.channel = channel;
    this.topic = topic;
    this.pending = new Map();
  }

  async start() {
    // rabbit.md "Queues": one reply queue per client, reached through the default exchange.
    this.replyQueue = `reply_${hex32()}`;
    await this.channel.assertQueue(this.replyQueue, {durable: false, autoDelete: false,
      exclusive: false, arguments: {'x-expires': 1800000}});
    await this.channel.consume(this.replyQueue, (delivery) => {
      const reply = unwrap(delivery.content);
      this.channel.ack(delivery);
      const waiter = this.pending.get(reply._msg_id);
      // README.md §2.2: heartbeats (no result, no failure, ending false) only keep a call alive.
      if (!waiter || (!reply.ending && reply.failure === null && reply.result === null)) return;
      this.pending.delete(reply._msg_id);
      waiter(reply);
    });
  }

  call(method, args, {namespace = 'conformance', version = '1.0', context = {}} = {}) {
    const msgId = hex32();
    const message = {method, args, namespace, version, _msg_id: msgId,
      _reply_q: this.replyQueue, _timeout: null, _unique_id: hex32()};
    for (const [key, value] of Object.entries(context)) message[`_context_${key}`] = value;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(msgId);
        reject(new Error(`no reply to ${method} in ${TIMEOUT_MS} ms`));
      }, TIMEOUT_MS);
      this.pending.set(msgId, (reply) => {
        clearTimeout(timer);
        if (reply.failure !== null && reply.failure !== undefined) {
          // README.md §2.3: the failure member is JSON text of the failure object.
          const failure = JSON.parse(reply.failure);
          const error = new Error(failure.message);
          error.remote = failure;
          reject(error);
        } else {
          resolve(reply.result);
        }
      });
      this.channel.publish(CONTROL_EXCHANGE, this.topic, envelope(message),
        properties({expiration: String(TIMEOUT_MS), mandatory: true}));
    });
  }
}

async function main() {
  const url = option('url', 'amqp://guest:guest@127.0.0.1:5672/');
  const topic = option('topic', 'conformance');
  const connection = await amqp.connect(url);
  const channel = await connection.createConfirmChannel();
  const results = [];
  const check = async (name, body) => {
    try {
      results.push([true, name, await body()]);
    } catch (error) {
      results.push([false, name, error.message]);
    }
  };
  try {
    const client = new Client(channel, topic);
    await client.start();

    await check('call', async () => {
      const value = {text: 'héllo ✓', n: 42, f: 2.5, items: [1, null, true], nested: {k: 'v'}};
      const result = await client.call('echo', {value}, {context: {user: 'node'}});
      if (JSON.stringify(result) !== JSON.stringify(value)) {
        throw new Error(`echo returned ${JSON.stringify(result)}`);
      }
      return 'echo returned the value unchanged';
    });

    await check('remote error', async () => {
      try {
        await client.call('fail', {message: 'boom from node'});
      } catch (error) {
        const failure = error.remote;
        if (!failure) throw error;
        if (failure.class !== 'ValueError' || failure.module !== 'builtins'
            || failure.message !== 'boom from node') {
          throw new Error(`unexpected failure ${JSON.stringify(failure)}`);
        }
        return `${failure.module}.${failure.class}: ${failure.message}`;
      }
      throw new Error('fail() returned instead of raising');
    });

    await check('version negotiation', async () => {
      try {
        await client.call('echo', {value: 1}, {version: '2.0'});
      } catch (error) {
        if (error.remote && error.remote.class === 'UnsupportedVersion') return error.message;
        throw error;
      }
      throw new Error('version 2.0 was served');
    });

    await check('notification', async () => {
      // README.md §3 and rabbit.md: our own queue bound to <ce> with <ntopic>.<priority>.
      const queue = `node_events_${hex32()}`;
      await channel.assertQueue(queue, {durable: false, autoDelete: true});
      await channel.bindQueue(queue, CONTROL_EXCHANGE, `${topic}_events.info`);
      const eventType = `node.check.${hex32().slice(0, 8)}`;
      const received = new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no notification')), TIMEOUT_MS);
        channel.consume(queue, (delivery) => {
          const note = unwrap(delivery.content);
          channel.ack(delivery);
          if (note.event_type === eventType) {
            clearTimeout(timer);
            resolve(note);
          }
        });
      });
      await client.call('emit', {event_type: eventType, payload: {from: 'node'}});
      const note = await received;
      if (note.priority !== 'INFO' || note.payload.from !== 'node'
          || !/^[0-9a-f-]{36}$/.test(note.message_id)) {
        throw new Error(`unexpected notification ${JSON.stringify(note)}`);
      }
      return `${note.event_type} from ${note.publisher_id}`;
    });
  } finally {
    await connection.close();
  }
  for (const [passed, name, detail] of results) {
    console.log(`${passed ? 'PASS' : 'FAIL'} ${name}: ${detail}`);
  }
  const passed = results.filter((r) => r[0]).length;
  console.log(`${passed} passed, ${results.length - passed} failed`);
  process.exit(passed === results.length ? 0 : 1);
}

main().catch((error) => {
  console.error(`error: ${error.message}`);
  process.exit(2);
});
