// Drives a real RocketMQ client (unpatched, from npm) for tests/rocketmq_clients_scenario.rs.
//   node driver.js produce <cpp|ons> '<json>'  json: {namesrv, topic, from, n, mode, tags[], props,
//                                                     accessKey, secretKey (ACL, both optional)}
//   node driver.js consume <cpp|ons> '<json>'  json: {namesrv, topic, group, expr, sql, broadcast,
//                                                     fromWhere, expect, timeoutMs, idleMs, settleMs,
//                                                     stopFile, readyFile, rebalanceMs, instance}
//   node driver.js produce grpc '<json>'     RocketMQ 5.x (rocketmq-client-nodejs, gRPC): json: {endpoints,
//                                                     topic, from, n, tags[], group (message group), props,
//                                                     bodyBytes, ssl, accessKey, secretKey, readyFile, holdMs, declare (topics
//                                                     named at startup, default [topic])}; a send that fails
//                                                     is recorded with its error, the run goes on; a failed
//                                                     startup answers {startupError}
//   node driver.js consume grpc '<json>'     a SimpleConsumer: {endpoints, topic, group, expr, expect,
//                                                     timeoutMs, batch, invisibleMs, awaitMs, noAck, changeMs,
//                                                     ssl, accessKey, secretKey}
// Prints one JSON line on stdout: what was sent (status, msgId per message) or what was received
// (body, tags, keys per message, in arrival order). Everything else goes to stderr.
'use strict';
const fs = require('fs');

const [command, client, json] = process.argv.slice(2);
const args = JSON.parse(json);
const sleep = ms => new Promise(r => setTimeout(r, ms));
// ACL credentials ({accessKey, secretKey} in the json), as each client takes them.
const credentialsCpp = (c) => {
  if (args.accessKey) c.setSessionCredentials(args.accessKey, args.secretKey, 'ALIYUN');
};
const credentialsOns = args.accessKey
  ? { accessKeyId: args.accessKey, accessKeySecret: args.secretKey }
  : {};
const tagOf = (i) => (args.tags && args.tags.length ? args.tags[i % args.tags.length] : null);

async function produceCpp() {
  const { Producer } = require('rocketmq-nodejs');
  const p = new Producer(args.group || 'pg_cpp', { nameServer: args.namesrv, sendMessageTimeout: 5000 });
  credentialsCpp(p);
  await p.start();
  const sent = [];
  for (let i = args.from || 0; i < (args.from || 0) + args.n; i++) {
    const options = { keys: 'k' + i };
    if (tagOf(i)) options.tags = tagOf(i);
    const body = 'body-' + i;
    if (args.mode === 'async' || (args.mode === 'mixed' && i % 2)) {
      const r = await new Promise((resolve, reject) =>
        p.send(args.topic, body, options, (err, result) => (err ? reject(err) : resolve(result))));
      sent.push({ i, status: r.status, msgId: r.msgId, async: true });
    } else {
      const r = await p.send(args.topic, body, options);
      sent.push({ i, status: r.status, msgId: r.msgId });
    }
  }
  await p.shutdown();
  return sent;
}

async function produceOns() {
  const { Producer, Message } = require('ali-ons');
  const httpclient = { request: async () => { throw new Error('unused'); } };
  const p = new Producer({ httpclient, nameSrv: args.namesrv, producerGroup: args.group || 'pg_ons', ...credentialsOns });
  await p.ready();
  // ali-ons sends return promises: "async" sends are several in flight at once (mixed: the odd
  // ones), awaited together at the end; sync ones are awaited one by one.
  const sent = [];
  const pending = [];
  for (let i = args.from || 0; i < (args.from || 0) + args.n; i++) {
    const m = new Message(args.topic, tagOf(i), 'body-' + i);
    m.keys = ['k' + i];
    m.properties.seq = String(i);
    const done = (r, async) =>
      sent.push({ i, status: r.sendStatus, msgId: r.msgId, broker: r.messageQueue.brokerName, async });
    if (args.mode === 'async' || (args.mode === 'mixed' && i % 2)) {
      pending.push(p.send(m).then((r) => done(r, true)));
    } else {
      done(await p.send(m), false);
    }
  }
  await Promise.all(pending);
  await p.close();
  sent.sort((a, b) => a.i - b.i);
  return sent;
}

// The 5.x client's options: endpoints, TLS, credentials; its log goes to $HOME/logs/rocketmq/.
const options5 = () => ({
  endpoints: args.endpoints,
  sslEnabled: !!args.ssl,
  requestTimeout: 5000,
  ...(args.accessKey ? { sessionCredentials: { accessKey: args.accessKey, accessSecret: args.secretKey } } : {}),
});

async function produceGrpc() {
  const { Producer } = require('rocketmq-client-nodejs');
  const p = new Producer({ ...options5(), topics: args.declare || [args.topic], maxAttempts: 2 });
  try {
    await p.startup();
  } catch (e) {
    return { startupError: String(e && e.message || e) };
  }
  const sent = [];
  for (let i = args.from || 0; i < (args.from || 0) + args.n; i++) {
    const body = args.bodyBytes ? Buffer.alloc(args.bodyBytes, 'x') : Buffer.from('body-' + i);
    const properties = new Map(Object.entries({ seq: String(i), ...(args.props || {}) }));
    const message = { topic: args.topic, body, keys: ['k' + i], properties };
    if (tagOf(i)) message.tag = tagOf(i);
    if (args.group) message.messageGroup = args.group;
    try {
      const r = await p.send(message);
      sent.push({ i, msgId: r.messageId, offset: r.offset });
    } catch (e) {
      sent.push({ i, error: String(e && e.message || e), code: e && e.code });
    }
  }
  // A client that stays connected (its telemetry stream open) for a while, e.g. across a
  // broker's shutdown.
  if (args.readyFile) fs.writeFileSync(args.readyFile, 'sent');
  if (args.holdMs) await sleep(args.holdMs);
  await p.shutdown();
  return sent;
}

// A SimpleConsumer: receives (and acks, unless `noAck`) until `expect` messages or `timeoutMs`;
// `changeMs` first moves each message's invisibility. Answers what it received, in order.
async function consumeGrpc() {
  const { SimpleConsumer } = require('rocketmq-client-nodejs');
  const c = new SimpleConsumer({
    ...options5(), consumerGroup: args.group, awaitDuration: args.awaitMs || 2000,
    subscriptions: new Map([[args.topic, args.expr || '*']]),
  });
  try {
    await c.startup();
  } catch (e) {
    return { startupError: String(e && e.message || e) };
  }
  const got = [];
  const t0 = Date.now();
  while (got.length < (args.expect || 0) && Date.now() - t0 < (args.timeoutMs || 30000)) {
    const messages = await c.receive(args.batch || 16, args.invisibleMs || 15000);
    for (const m of messages) {
      if (args.changeMs) await c.changeInvisibleDuration(m, args.changeMs);
      if (!args.noAck) await c.ack(m);
      got.push({ body: m.body.toString(), tag: m.tag, keys: m.keys, msgId: m.messageId,
        props: Object.fromEntries(m.properties), group: m.messageGroup, corrupted: !!m.corrupted,
        attempt: m.deliveryAttempt, offset: m.offset });
    }
  }
  await c.shutdown();
  return got;
}

async function consume(start, stop) {
  const got = [];
  const onMessage = (m) => got.push(m);
  const handle = await start(onMessage);
  if (args.readyFile) fs.writeFileSync(args.readyFile, 'ready');
  const t0 = Date.now();
  let last = Date.now(), seen = 0;
  while (Date.now() - t0 < (args.timeoutMs || 60000)) {
    if (got.length !== seen) { seen = got.length; last = Date.now(); }
    if (args.expect !== undefined && got.length >= args.expect) break;
    if (args.stopFile && fs.existsSync(args.stopFile)) break;
    if (args.idleMs && got.length > 0 && Date.now() - last > args.idleMs) break;
    await sleep(50);
  }
  // Let any duplicate still in flight arrive before counting.
  await sleep(args.settleMs || 0);
  await stop(handle);
  return got;
}

async function consumeCpp() {
  const { PushConsumer } = require('rocketmq-nodejs');
  return consume(async (onMessage) => {
    const c = new PushConsumer(args.group, { nameServer: args.namesrv });
    credentialsCpp(c);
    c.subscribe(args.topic, args.expr || '*');
    c.on('message', (msg, ack) => {
      onMessage({ body: msg.body, tags: msg.tags, keys: msg.keys });
      ack.done();
    });
    await c.start();
    return c;
  }, (c) => c.shutdown());
}

async function consumeOns() {
  const { Consumer } = require('ali-ons');
  const httpclient = { request: async () => { throw new Error('unused'); } };
  return consume(async (onMessage) => {
    const c = new Consumer({
      httpclient,
      // ali-ons ignores NOTIFY_CONSUMER_IDS_CHANGED and rebalances only on this timer (10 s by
      // default), so a test that starts consumers together sets it short.
      rebalanceInterval: args.rebalanceMs || 10000,
      // A broadcasting client keeps the instance name DEFAULT (as Java does), so two on one host
      // share a client id unless they are named apart.
      ...(args.instance ? { instanceName: args.instance } : {}),
      nameSrv: args.namesrv,
      ...credentialsOns,
      consumerGroup: args.group,
      isBroadcast: !!args.broadcast,
      consumeFromWhere: args.fromWhere || 'CONSUME_FROM_FIRST_OFFSET',
    });
    const expr = args.sql ? { expressionType: 'SQL92', subString: args.expr } : (args.expr || '*');
    c.subscribe(args.topic, expr, async (msg) => {
      onMessage({ body: msg.body.toString(), tags: msg.tags, keys: msg.keys, props: msg.properties });
    });
    c.on('error', (e) => console.error('consumer error', e.message));
    await c.ready();
    return c;
  }, (c) => c.close());
}

const run = {
  produce: { cpp: produceCpp, ons: produceOns, grpc: produceGrpc },
  consume: { cpp: consumeCpp, ons: consumeOns, grpc: consumeGrpc },
}[command][client];

// The C++ client never lets its process exit: at exit its static EventLoop's destructor joins a
// thread that is still in epoll_wait (seen with gdb in rocketmq-nodejs 1.1.2). So a C++ driver
// ends itself with SIGKILL once its answer is written (harness/js.rs accepts that from it only
// with a complete answer); a failed one prints no answer.
function end(code, out) {
  if (client === 'cpp') {
    console.error('ending with SIGKILL: the C++ client does not return from exit()');
    process.kill(process.pid, 'SIGKILL');
  }
  // A 5.x client whose startup failed keeps its channels open (nothing to shut down): end it.
  if (client === 'grpc' && code === 0 && !(out && out.startupError)) {
    // The 5.x client must let its process end by itself after shutdown() (its channels and
    // telemetry streams closed); one that still runs 10 s later is a finding, not a pass.
    setTimeout(() => { console.error('still running 10 s after shutdown'); process.exit(3); }, 10000).unref();
    return;
  }
  process.exit(code);
}

run()
  .then((out) => process.stdout.write(JSON.stringify(out) + '\n', () => end(0, out)))
  .catch((e) => { console.error('driver failed:', e && e.stack || e); end(1); });
