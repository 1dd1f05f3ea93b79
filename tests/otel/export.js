'use strict';
/*
 * export.js - the real OpenTelemetry JS SDK, driven by tests/integration/otel_sdk.c.
 *
 *   node export.js export --url URL --protocol json|proto [--gzip] --expect FILE
 *       Creates a small trace with known names and attributes (service.name "checkout",
 *       process.pid = this process, a transaction id), exports it with the real OTLP/HTTP
 *       exporter to URL (batches of 2 spans, so several requests on one keep-alive connection),
 *       and writes what it created to FILE as JSON (ids, names, kinds in OTLP numbering, times
 *       in ns, attributes rendered as kprobe renders them) for the C test to compare with what
 *       it decoded. Exits 1 when any export failed or the SDK logged a warning or an error (for
 *       example a response it could not parse).
 *
 *   node export.js check-response --protocol json|proto --file FILE
 *       Parses FILE (a response body kprobe produced) with the exporter's own response
 *       deserializer and prints the result as JSON.
 */
const fs = require('fs');
const os = require('os');
const api = require('@opentelemetry/api');
const { NodeTracerProvider, BatchSpanProcessor, SimpleSpanProcessor, InMemorySpanExporter } =
	require('@opentelemetry/sdk-trace-node');
const { resourceFromAttributes } = require('@opentelemetry/resources');

function args() {
	const a = { cmd: process.argv[2] };
	for (let i = 3; i < process.argv.length; i++) {
		const k = process.argv[i];
		if (k === '--gzip') a.gzip = true;
		else a[k.replace(/^--/, '')] = process.argv[++i];
	}
	return a;
}

function nanos(hr) {
	return (BigInt(hr[0]) * 1000000000n + BigInt(hr[1])).toString();
}

/* An attribute value as graph/otlp.c renders it (otlp.h, enum otlp_vtype). */
function render(v) {
	if (typeof v === 'string') return v;
	if (typeof v === 'boolean') return v ? 'true' : 'false';
	if (typeof v === 'number') return String(v);
	return JSON.stringify(v);
}

function checkResponse(a) {
	const { JsonTraceSerializer, ProtobufTraceSerializer } =
		require('@opentelemetry/otlp-transformer');
	const ser = a.protocol === 'proto' ? ProtobufTraceSerializer : JsonTraceSerializer;
	const res = ser.deserializeResponse(new Uint8Array(fs.readFileSync(a.file)));
	process.stdout.write(JSON.stringify(res, (k, v) => (typeof v === 'bigint' ? v.toString() : v)));
}

async function exportSpans(a) {
	let problems = [];
	api.diag.setLogger(
		{
			error: (...m) => problems.push('error: ' + m.join(' ')),
			warn: (...m) => problems.push('warn: ' + m.join(' ')),
			info: () => {},
			debug: () => {},
			verbose: () => {},
		},
		api.DiagLogLevel.WARN
	);
	const { OTLPTraceExporter } =
		a.protocol === 'proto'
			? require('@opentelemetry/exporter-trace-otlp-proto')
			: require('@opentelemetry/exporter-trace-otlp-http');
	const exporter = new OTLPTraceExporter({
		url: a.url,
		compression: a.gzip ? 'gzip' : 'none',
		timeoutMillis: 10000,
	});
	const results = [];
	const send = exporter.export.bind(exporter);
	exporter.export = (spans, done) =>
		send(spans, (r) => {
			results.push(r);
			done(r);
		});
	const memory = new InMemorySpanExporter();
	const provider = new NodeTracerProvider({
		resource: resourceFromAttributes({
			'service.name': 'checkout',
			'process.pid': process.pid,
			'host.name': os.hostname(),
			'deployment.environment': 'kprobe-test',
		}),
		spanProcessors: [
			new SimpleSpanProcessor(memory),
			new BatchSpanProcessor(exporter, { maxExportBatchSize: 2, scheduledDelayMillis: 50 }),
		],
	});
	const tracer = provider.getTracer('kprobe-otel-test', '1.0.0');
	const { SpanKind, SpanStatusCode, context, trace } = api;

	const root = tracer.startSpan('checkout', {
		kind: SpanKind.SERVER,
		attributes: {
			'transaction.id': 'req-9f21',
			'http.request.method': 'POST',
			retries: 3,
			ratio: 0.25,
			ok: true,
			tags: ['a', 'b'],
			'unicode.name': 'caf\u00e9 \u2603',
		},
	});
	const ctx = trace.setSpan(context.active(), root);
	const db = tracer.startSpan(
		'database write',
		{ kind: SpanKind.CLIENT, attributes: { 'db.system': 'postgresql', 'thread.id': 4242 } },
		ctx
	);
	const f = fs.openSync(a.expect + '.scratch', 'w');
	fs.writeSync(f, 'ledger entry\n');
	fs.fsyncSync(f);
	fs.closeSync(f);
	db.addEvent('flushed', { bytes: 13 });
	db.setStatus({ code: SpanStatusCode.ERROR, message: 'deadline exceeded' });
	db.end();
	for (let i = 0; i < 3; i++) {
		const s = tracer.startSpan('item ' + i, { attributes: { 'item.index': i } }, ctx);
		s.end();
	}
	root.setStatus({ code: SpanStatusCode.OK });
	root.end();
	await provider.forceFlush();
	/* read before shutdown: shutting the provider down empties the in-memory exporter */
	const spans = memory.getFinishedSpans().map((s) => ({
		traceId: s.spanContext().traceId,
		spanId: s.spanContext().spanId,
		parentSpanId: s.parentSpanContext ? s.parentSpanContext.spanId : '',
		name: s.name,
		kind: s.kind + 1, /* the API's SpanKind starts at INTERNAL = 0, OTLP's at UNSPECIFIED */
		start: nanos(s.startTime),
		end: nanos(s.endTime),
		status: s.status.code,
		statusMessage: s.status.message || '',
		events: s.events.length,
		attributes: Object.fromEntries(
			Object.entries(s.attributes).map(([k, v]) => [k, render(v)])
		),
	}));
	await provider.shutdown();
	fs.writeFileSync(a.expect, JSON.stringify({ pid: process.pid, host: os.hostname(), spans }));
	const failed = results.filter((r) => r.code !== 0);
	for (const r of failed) problems.push('export failed: ' + (r.error ? r.error.message : r.code));
	if (results.length === 0) problems.push('nothing was exported');
	if (problems.length) {
		process.stderr.write(problems.join('\n') + '\n');
		process.exit(1);
	}
	process.stderr.write(`exported ${spans.length} spans in ${results.length} requests\n`);
}

/*
 * node export.js join --url URL --dir DIR --txn ID [--delay-ms N] --out FILE
 *     A span "checkout" (transaction.id = ID, thread.id = this thread) whose child span
 *     "ledger write" writes 4321 bytes three times (fs.writeSync on the main thread: real write
 *     system calls inside the spans), then one write outside any span. The spans are exported
 *     (OTLP/HTTP JSON) --delay-ms after they ended, so their events are stored before the spans
 *     arrive. Writes {pid, traceId, start, end} to FILE.
 */
async function joinSpans(a) {
	const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http');
	const exporter = new OTLPTraceExporter({ url: a.url, timeoutMillis: 10000 });
	const provider = new NodeTracerProvider({
		resource: resourceFromAttributes({
			'service.name': 'checkout',
			'process.pid': process.pid,
			'host.name': os.hostname(),
		}),
		/* nothing leaves until forceFlush: the spans arrive late on purpose */
		spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: 3600000 })],
	});
	const tracer = provider.getTracer('kprobe-join-test', '1.0.0');
	const { context, trace } = api;
	const buf = Buffer.alloc(4321, 'k');
	const root = tracer.startSpan('checkout', {
		attributes: { 'transaction.id': a.txn, 'thread.id': process.pid },
	});
	const ctx = trace.setSpan(context.active(), root);
	const child = tracer.startSpan('ledger write', { attributes: { 'thread.id': process.pid } }, ctx);
	const f = fs.openSync(a.dir + '/ledger.dat', 'w');
	for (let i = 0; i < 3; i++) fs.writeSync(f, buf);
	fs.fsyncSync(f);
	child.end();
	root.end();
	/* well after the spans (past the 1 ms end slack the join allows for the SDK's early
	 * clock): this write belongs to no transaction */
	await new Promise((r) => setTimeout(r, 20));
	fs.writeSync(f, Buffer.alloc(1234, 'x'));
	fs.closeSync(f);
	await new Promise((r) => setTimeout(r, Number(a['delay-ms'] || 0)));
	await provider.forceFlush();
	await provider.shutdown();
	fs.writeFileSync(
		a.out,
		JSON.stringify({ pid: process.pid, traceId: root.spanContext().traceId })
	);
}

const a = args();
if (a.cmd === 'join') {
	joinSpans(a).catch((e) => {
		process.stderr.write('export.js: ' + (e.stack || e) + '\n');
		process.exit(1);
	});
} else if (a.cmd === 'check-response') {
	checkResponse(a);
} else if (a.cmd === 'export') {
	exportSpans(a).catch((e) => {
		process.stderr.write('export.js: ' + (e.stack || e) + '\n');
		process.exit(1);
	});
} else {
	process.stderr.write('usage: export.js export|check-response ... (see the header)\n');
	process.exit(2);
}
