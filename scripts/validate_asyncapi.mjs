#!/usr/bin/env node
// Validates docs/asyncapi.yaml offline:
//   1. it parses as YAML and is valid against the official AsyncAPI 3.0.0 JSON
//      schema (npm @asyncapi/specs, checked with ajv + ajv-formats);
//   2. every local $ref resolves, and every operation's messages belong to its
//      channel (the JSON schema cannot check either);
//   3. every message example validates against its payload and headers schemas;
//   4. it has not drifted from the code: the exchange and queue names of
//      crates/infrastructure/src/amqp/topology.rs, the event types and the payload
//      field names of crates/application/src/events.rs.
//
// Usage: node scripts/validate_asyncapi.mjs [docs/asyncapi.yaml]
// The npm packages are looked up in $OFFNDAT_NODE_MODULES (scripts/validate-deploy.sh
// installs them into its tools cache and sets it).
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import process from 'node:process';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const file = path.resolve(process.argv[2] ?? path.join(root, 'docs/asyncapi.yaml'));
const modules = process.env.OFFNDAT_NODE_MODULES;
if (!modules) {
  console.error('validate_asyncapi: set OFFNDAT_NODE_MODULES to a node_modules with @asyncapi/specs, ajv, ajv-formats and yaml (scripts/validate-deploy.sh does)');
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(modules), 'noop.js'));
const YAML = require('yaml');
const Ajv = require('ajv');
const addFormats = require('ajv-formats');
const specs = require('@asyncapi/specs');

const problems = [];
const fail = (message) => problems.push(message);

// --- 1. YAML + the AsyncAPI 3.0.0 JSON schema -----------------------------------
const parsed = YAML.parseDocument(readFileSync(file, 'utf8'), { prettyErrors: true, uniqueKeys: true });
if (parsed.errors.length) {
  for (const error of parsed.errors) console.error(`validate_asyncapi: ${file}: ${error.message}`);
  process.exit(1);
}
const doc = parsed.toJS();
if (doc.asyncapi !== '3.0.0') fail(`asyncapi is ${doc.asyncapi}, expected 3.0.0`);

// strict: false as in AsyncAPI's own parser: the schema uses keywords ajv's strict
// mode flags. meta: false because the bundled schema carries its own copy of the
// draft-07 meta-schema, which would clash with ajv's.
const ajv = new Ajv({ allErrors: true, strict: false, meta: false, validateSchema: false, allowUnionTypes: true });
addFormats(ajv);
const validateDocument = ajv.compile(specs.schemas['3.0.0']);
if (!validateDocument(doc)) {
  for (const error of validateDocument.errors) {
    fail(`schema: ${error.instancePath || '/'} ${error.message} ${JSON.stringify(error.params)}`);
  }
}

// --- 2. references ---------------------------------------------------------------
const pointer = (ref) => {
  if (!ref.startsWith('#/')) return undefined;
  return ref
    .slice(2)
    .split('/')
    .map((part) => part.replaceAll('~1', '/').replaceAll('~0', '~'))
    .reduce((node, part) => (node === undefined ? undefined : node[part]), doc);
};
const walk = (node, at) => {
  if (Array.isArray(node)) node.forEach((item, i) => walk(item, `${at}/${i}`));
  else if (node && typeof node === 'object') {
    if (typeof node.$ref === 'string' && pointer(node.$ref) === undefined) fail(`${at}: $ref ${node.$ref} does not resolve`);
    for (const [key, value] of Object.entries(node)) walk(value, `${at}/${key}`);
  }
};
walk(doc, '');
for (const [name, operation] of Object.entries(doc.operations ?? {})) {
  const channel = operation.channel?.$ref;
  for (const message of operation.messages ?? []) {
    if (!message.$ref?.startsWith(`${channel}/messages/`)) fail(`operation ${name}: message ${message.$ref} is not one of ${channel}'s`);
  }
}

// --- 3. examples against their schemas -------------------------------------------
// The document's schemas are draft-07 compatible: register the document so that
// its internal $refs resolve, and validate each example against the message's schema.
const examples = new Ajv({ allErrors: true, strict: false });
addFormats(examples);
examples.addSchema({ $id: 'asyncapi', components: doc.components });
const schemaAt = (schema) => (schema?.$ref ? { $ref: `asyncapi${schema.$ref}` } : schema);
for (const [name, message] of Object.entries(doc.components?.messages ?? {})) {
  if (!message.examples?.length) fail(`message ${name} has no example`);
  for (const example of message.examples ?? []) {
    for (const part of ['payload', 'headers']) {
      if (example[part] === undefined) continue;
      const validate = examples.compile(schemaAt(message[part]));
      if (!validate(example[part])) {
        fail(`message ${name}, example ${example.name}: ${part} ${examples.errorsText(validate.errors)}`);
      }
    }
  }
}

// --- 4. drift from the code --------------------------------------------------------
const topology = readFileSync(path.join(root, 'crates/infrastructure/src/amqp/topology.rs'), 'utf8');
const declared = [...topology.matchAll(/format!\("\{namespace\}\.([\w.-]+)"\)/g)].map((m) => `offndat.${m[1]}`);
if (declared.length < 5) fail(`topology.rs: expected at least 5 names, found ${declared}`);
const documented = new Set();
for (const channel of Object.values(doc.channels ?? {})) {
  const amqp = channel.bindings?.amqp ?? {};
  if (amqp.exchange?.name) documented.add(amqp.exchange.name);
  if (amqp.queue?.name) documented.add(amqp.queue.name);
}
for (const name of declared) if (!documented.has(name)) fail(`topology.rs declares ${name}; the document does not`);
for (const name of documented) if (!declared.includes(name)) fail(`the document names ${name}; topology.rs does not declare it`);

const events = readFileSync(path.join(root, 'crates/application/src/events.rs'), 'utf8');
const types = [...events.matchAll(/pub const \w+: &str = "([\w.]+)";/g)].map((m) => m[1]);
const messageNames = Object.values(doc.components?.messages ?? {}).map((m) => m.name);
if (JSON.stringify([...types].sort()) !== JSON.stringify([...messageNames].sort())) {
  fail(`events.rs has event types ${types}, the document messages ${messageNames}`);
}
const camel = (snake) => snake.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
for (const struct of ['LinkCreatedV1', 'LinkVisitedV1', 'LinkVisits', 'LinkVisitedV2', 'LinkTally', 'HourTally', 'ValueCount', 'RecentVisit', 'HourCount']) {
  const body = events.match(new RegExp(`pub struct ${struct} \\{([^}]*)\\}`))?.[1];
  if (!body) {
    fail(`events.rs has no struct ${struct}`);
    continue;
  }
  const fields = [...body.matchAll(/pub (\w+):/g)].map((m) => camel(m[1])).sort();
  const properties = Object.keys(doc.components?.schemas?.[struct]?.properties ?? {}).sort();
  if (JSON.stringify(fields) !== JSON.stringify(properties)) {
    fail(`${struct}: events.rs has fields ${fields}, the document ${properties}`);
  }
}

if (problems.length) {
  for (const problem of problems) console.error(`validate_asyncapi: ${path.relative(root, file)}: ${problem}`);
  process.exit(1);
}
console.log(
  `validate_asyncapi: ${path.relative(root, file)} is valid AsyncAPI ${doc.asyncapi} ` +
    `(${Object.keys(doc.channels).length} channels, ${Object.keys(doc.operations).length} operations, ` +
    `${Object.keys(doc.components.messages).length} messages; names match topology.rs and events.rs)`,
);
