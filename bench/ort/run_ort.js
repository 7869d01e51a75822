#!/usr/bin/env node
// ONNX Runtime (CPU, through onnxruntime-node) as a peer in kiln's benchmark
// run: the same models, inputs and thread counts as kiln_bench's BM_Zoo, so
// that bench/report.py can put kiln's times next to ORT's.
//
// Usage: node bench/ort/run_ort.js --manifest=ZOO/manifest.json --out=DIR
//            [--threads=1,2] [--min_time=1.0] [--min_runs=20]
//            [--cold_reps=5] [--filter=REGEX] [--allow_spinning=1|0]
//
// The manifest is the one //bench/models:zoo writes:
//   {"cases": [{"name": "...", "model": "x.onnx", "inputs": {"<input name>": "x.in0.npy"}}]}
// with paths relative to the manifest. For every case and thread count:
//  - cold start: a fresh session (created from the file, as kiln's
//    BM_ZooColdStart loads the file) plus its first run, wall time, median
//    over --cold_reps repetitions;
//  - steady state: warm up for 10 runs or 0.5 s, whichever comes first, then
//    time single runs until both --min_time seconds and --min_runs runs are
//    reached (a slow model stops after 10 * min_time once it has 5 runs);
//    median, p90, mean and run count.
// Session options mirror kiln's: intra-op threads = threads, one inter-op
// thread, sequential execution, all graph optimizations on. ORT's intra-op
// pool spins while it waits for work by default (--allow_spinning=1, kept as
// ORT ships it); on a busy 2-core machine that doubles its 2-thread times,
// so the setting is recorded in ort.json and the report.
//
// Writes DIR/ort.json and, once per case, DIR/<case>/output_<i>.npy (i = the
// model's output index; '/' and ':' in the case name become '_') for
// kiln_bench --ort_outputs to compare against. A case ORT cannot load or run
// is recorded with its error; the script carries on with the next case.
//
// Times include the Node binding's per-call cost (N-API call, wrapping the
// inputs, allocating output tensors), a few microseconds: negligible beside
// the zoo's models, visible only on microsecond-scale ones.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');

let ort;
try {
  ort = require('onnxruntime-node');
} catch (e) {
  console.error('run_ort: cannot load onnxruntime-node (run `npm ci --ignore-scripts` in bench/ort): ' + e.message);
  process.exit(2);
}

// ---------------------------------------------------------------------------
// Flags

function parseFlags(argv) {
  const flags = {
    manifest: '', out: '', threads: '1,2', min_time: '1.0', min_runs: '20', cold_reps: '5', filter: '',
    allow_spinning: '1',
  };
  for (const arg of argv) {
    const m = /^--([a-z_]+)=(.*)$/.exec(arg);
    if (!m || !(m[1] in flags)) throw new Error('unknown flag ' + arg);
    flags[m[1]] = m[2];
  }
  if (!flags.manifest || !flags.out) throw new Error('--manifest=FILE and --out=DIR are required');
  return {
    manifest: flags.manifest,
    out: flags.out,
    threads: flags.threads.split(',').map(Number),
    minTime: Number(flags.min_time),
    minRuns: Number(flags.min_runs),
    coldReps: Number(flags.cold_reps),
    filter: flags.filter ? new RegExp(flags.filter) : null,
    allowSpinning: flags.allow_spinning === '0' ? '0' : '1',
  };
}

// ---------------------------------------------------------------------------
// .npy files (format 1.0-3.0, little-endian, C order)

// descr -> [ORT tensor type, TypedArray constructor]. bool is one byte per
// element in both numpy and ORT.
const kNpyTypes = {
  '<f4': ['float32', Float32Array],
  '<f8': ['float64', Float64Array],
  '<i8': ['int64', BigInt64Array],
  '<i4': ['int32', Int32Array],
  '|b1': ['bool', Uint8Array],
  '|u1': ['uint8', Uint8Array],
  '|i1': ['int8', Int8Array],
};

function readNpy(file) {
  const bytes = fs.readFileSync(file);
  const fail = (what) => { throw new Error(file + ': ' + what); };
  if (bytes.length < 10 || bytes.toString('latin1', 0, 6) !== '\x93NUMPY') fail('not a .npy file');
  const major = bytes[6];
  let headerLen, headerStart;
  if (major === 1) {
    headerLen = bytes.readUInt16LE(8);
    headerStart = 10;
  } else if (major === 2 || major === 3) {
    headerLen = bytes.readUInt32LE(8);
    headerStart = 12;
  } else {
    fail('unsupported .npy version ' + major);
  }
  const dataStart = headerStart + headerLen;
  if (dataStart > bytes.length) fail('truncated header');
  const header = bytes.toString(major === 3 ? 'utf8' : 'latin1', headerStart, dataStart);
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header);
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header);
  const shape = /'shape'\s*:\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shape) fail('bad header ' + JSON.stringify(header));
  if (fortran[1] === 'True') fail('Fortran order is not supported');
  let code = descr[1];
  if (code[0] === '=') code = '<' + code.slice(1);  // native: little-endian on x86-64
  if (!(code in kNpyTypes)) fail('unsupported dtype ' + descr[1]);
  const [type, Ctor] = kNpyTypes[code];
  const dims = shape[1].split(',').map((s) => s.trim()).filter((s) => s.length > 0).map(Number);
  if (dims.some((d) => !Number.isInteger(d) || d < 0)) fail('bad shape ' + shape[1]);
  const count = dims.reduce((a, b) => a * b, 1);
  const byteLength = count * Ctor.BYTES_PER_ELEMENT;
  if (dataStart + byteLength > bytes.length) fail('truncated data: ' + dims.join('x') + ' ' + code);
  // Copy into a fresh, aligned buffer: the header length need not leave the
  // data aligned for the element size.
  const data = new Ctor(count);
  new Uint8Array(data.buffer).set(bytes.subarray(dataStart, dataStart + byteLength));
  if (type === 'bool') for (let i = 0; i < count; ++i) data[i] = data[i] ? 1 : 0;
  return new ort.Tensor(type, data, dims);
}

const kNpyDescr = {float32: '<f4', float64: '<f8', int64: '<i8', int32: '<i4', bool: '|b1', uint8: '|u1', int8: '|i1'};

function writeNpy(file, tensor) {
  const descr = kNpyDescr[tensor.type];
  if (!descr) throw new Error('cannot write ' + tensor.type + ' as .npy');
  const dims = tensor.dims;
  const shape = dims.length === 0 ? '()' : dims.length === 1 ? '(' + dims[0] + ',)' : '(' + dims.join(', ') + ')';
  let dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ', }';
  // Pad with spaces and a final newline so the data starts on a 64-byte
  // boundary, as numpy does.
  const unpadded = 10 + dict.length + 1;
  dict += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(dict.length, 8);
  const data = tensor.data;
  const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(dict, 'latin1'), body]));
}

// ---------------------------------------------------------------------------
// Measurement

const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

function quantile(sorted, q) {
  if (sorted.length === 0) return null;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos), hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

function summarize(times) {
  const sorted = [...times].sort((a, b) => a - b);
  return {
    median_ms: quantile(sorted, 0.5),
    p90_ms: quantile(sorted, 0.9),
    mean_ms: times.reduce((a, b) => a + b, 0) / times.length,
    min_ms: sorted[0],
    runs: times.length,
  };
}

// Peak resident set since the last reset, in MiB (Linux only, else null).
// Writing 5 to clear_refs resets VmHWM, so each case's peak is its own; it
// still counts the Node process itself (see baseline_rss_mb).
function resetPeakRss() {
  try {
    fs.writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch (e) {
    return false;
  }
}

function peakRssMb() {
  try {
    const m = /VmHWM:\s*(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch (e) {
    return null;
  }
}

function sessionOptions(threads, opts) {
  return {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    logSeverityLevel: 3,  // errors only: ORT's warnings would flood the log
    // Becomes the session config entry "session.intra_op.allow_spinning".
    extra: {session: {intra_op: {allow_spinning: opts.allowSpinning}}},
  };
}

function checkInputs(session, feeds) {
  const missing = session.inputNames.filter((n) => !(n in feeds));
  const extra = Object.keys(feeds).filter((n) => !session.inputNames.includes(n));
  if (missing.length || extra.length) {
    throw new Error('manifest inputs do not match the model: missing [' + missing.join(', ') + '], unknown [' +
                    extra.join(', ') + ']');
  }
}

async function coldStart(modelPath, feeds, threads, opts) {
  const times = [];
  for (let i = 0; i < opts.coldReps; ++i) {
    const start = nowMs();
    const session = await ort.InferenceSession.create(modelPath, sessionOptions(threads, opts));
    await session.run(feeds);
    times.push(nowMs() - start);
    await session.release();
  }
  return summarize(times);
}

async function steadyState(session, feeds, opts) {
  const warmStart = nowMs();
  for (let i = 0; i < 10 && nowMs() - warmStart < 500; ++i) await session.run(feeds);
  const times = [];
  const start = nowMs();
  const minMs = opts.minTime * 1000;
  for (;;) {
    const t0 = nowMs();
    await session.run(feeds);
    const t1 = nowMs();
    times.push(t1 - t0);
    const elapsed = t1 - start;
    if (elapsed >= minMs && times.length >= opts.minRuns) break;
    if (elapsed >= 10 * minMs && times.length >= 5) break;
  }
  return summarize(times);
}

function caseDirName(name) {
  return name.replace(/[/:]/g, '_');
}

async function runCase(entry, baseDir, opts, report) {
  const name = entry.name;
  const record = {name, model: entry.model, threads: {}};
  report.cases.push(record);
  let feeds;
  try {
    if (!entry.model || !entry.inputs) throw new Error('manifest case needs "model" and "inputs"');
    feeds = {};
    for (const [input, file] of Object.entries(entry.inputs)) feeds[input] = readNpy(path.resolve(baseDir, file));
  } catch (e) {
    record.error = String(e.message || e);
    console.error('run_ort: ' + name + ': ' + record.error);
    return;
  }
  const modelPath = path.resolve(baseDir, entry.model);
  let outputsWritten = false;
  for (const threads of opts.threads) {
    const result = {};
    record.threads[String(threads)] = result;
    let session = null;
    try {
      result.cold_start = await coldStart(modelPath, feeds, threads, opts);
      resetPeakRss();
      session = await ort.InferenceSession.create(modelPath, sessionOptions(threads, opts));
      checkInputs(session, feeds);
      const outputs = await session.run(feeds);
      if (!outputsWritten) {
        const dir = path.join(opts.out, caseDirName(name));
        fs.mkdirSync(dir, {recursive: true});
        session.outputNames.forEach((outName, i) => writeNpy(path.join(dir, 'output_' + i + '.npy'), outputs[outName]));
        record.outputs = session.outputNames.map((outName) => ({name: outName, type: outputs[outName].type,
                                                                 dims: outputs[outName].dims}));
        outputsWritten = true;
      }
      result.steady = await steadyState(session, feeds, opts);
      result.peak_rss_mb = peakRssMb();
      console.error('run_ort: ' + name + ' threads:' + threads + ' median ' + result.steady.median_ms.toFixed(4) +
                    ' ms (' + result.steady.runs + ' runs), cold start ' + result.cold_start.median_ms.toFixed(2) +
                    ' ms');
    } catch (e) {
      result.error = String(e.message || e).split('\n')[0];
      console.error('run_ort: ' + name + ' threads:' + threads + ': ' + result.error);
    } finally {
      if (session) await session.release();
    }
  }
}

async function main() {
  let opts;
  try {
    opts = parseFlags(process.argv.slice(2));
  } catch (e) {
    console.error('run_ort: ' + e.message);
    process.exit(2);
  }
  const manifest = JSON.parse(fs.readFileSync(opts.manifest, 'utf8'));
  const baseDir = path.dirname(path.resolve(opts.manifest));
  fs.mkdirSync(opts.out, {recursive: true});
  const report = {
    onnxruntime_version: ort.env.versions.node || ort.env.versions.common,
    onnxruntime_common_version: ort.env.versions.common,
    node_version: process.version,
    manifest: path.resolve(opts.manifest),
    date: new Date().toISOString(),
    loadavg_at_start: os.loadavg(),
    baseline_rss_mb: process.memoryUsage().rss / (1024 * 1024),
    settings: {
      threads: opts.threads, min_time_s: opts.minTime, min_runs: opts.minRuns, cold_reps: opts.coldReps,
      inter_op_threads: 1, graph_optimization_level: 'all', execution_mode: 'sequential',
      allow_spinning: opts.allowSpinning === '1',
    },
    cases: [],
  };
  for (const entry of manifest.cases || []) {
    if (opts.filter && !opts.filter.test(entry.name)) continue;
    await runCase(entry, baseDir, opts, report);
  }
  report.loadavg_at_end = os.loadavg();
  const outFile = path.join(opts.out, 'ort.json');
  fs.writeFileSync(outFile, JSON.stringify(report, null, 1) + '\n');
  console.error('run_ort: wrote ' + outFile);
}

main().catch((e) => {
  console.error('run_ort: ' + (e.stack || e));
  process.exit(1);
});
