// package.json queries and Node.js version resolution for the Node.js buildpack.
// Runs on the stack's node. Usage:
//   node pkg.js plan FILE                  -> bash assignments (see `plan` below): node
//                                            version, engines (node, npm, yarn, pnpm, iojs)
//                                            and whether node is met, packageManager,
//                                            scripts, npm's package env, cacheDirectories
//   node pkg.js has-script FILE NAME       -> exit 0 when scripts[NAME] exists
//   node pkg.js pick RANGE INDEX_FILE      -> prints the highest version in a
//                                             nodejs.org-style index.json satisfying RANGE
//   node pkg.js pick-list RANGE V1 V2 ...  -> same, from a list of versions
//   node pkg.js pick-lts INDEX_FILE        -> the newest LTS release in the index (Active LTS)
'use strict';
const fs = require('fs');
const path = require('path');

function loadSemver() {
  const candidates = [
    path.join(path.dirname(fs.realpathSync(process.execPath)), '../lib/node_modules/npm/node_modules/semver'),
    '/usr/lib/node_modules/npm/node_modules/semver',
    '/usr/share/nodejs/semver',
  ];
  for (const c of candidates) {
    try {
      return require(c);
    } catch (_) {
      // try the next location
    }
  }
  return fallbackSemver();
}

// A small subset of node-semver, used only when npm's copy can't be found:
// exact versions, x-ranges (22, 22.x, 22.1.x, *), ^, ~, comparators, || and AND.
function fallbackSemver() {
  const parse = (v) => {
    const m = /^v?(\d+)\.(\d+)\.(\d+)$/.exec(String(v).trim());
    return m ? [+m[1], +m[2], +m[3]] : null;
  };
  const cmp = (a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
  const partial = (s) => {
    const parts = s.replace(/^v/, '').split('.');
    const out = [];
    for (const p of parts) {
      if (p === 'x' || p === 'X' || p === '*' || p === '') break;
      if (!/^\d+$/.test(p)) return null;
      out.push(+p);
    }
    return out;
  };
  // Returns a list of [op, version] comparators for one simple range term.
  const term = (t) => {
    let m = /^(>=|<=|>|<|=|\^|~)?\s*(.*)$/.exec(t);
    const op = m[1] || '';
    const p = partial(m[2]);
    if (p === null) return null;
    const lo = [p[0] || 0, p[1] || 0, p[2] || 0];
    const bump = (i) => { const v = [p[0] || 0, p[1] || 0, 0]; v[i] += 1; if (i === 0) v[1] = 0; return v; };
    if (op === '^') {
      const i = lo[0] > 0 || p.length < 2 ? 0 : lo[1] > 0 || p.length < 3 ? 1 : 2;
      const hi = i === 2 ? [lo[0], lo[1], lo[2] + 1] : bump(i);
      return [['>=', lo], ['<', hi]];
    }
    if (op === '~') return [['>=', lo], ['<', p.length <= 1 ? bump(0) : bump(1)]];
    if (op && op !== '=') return [[op, lo]];
    if (p.length === 0) return [];
    if (p.length === 3) return [['=', lo]];
    return [['>=', lo], ['<', bump(p.length - 1)]];
  };
  const test = (v, [op, w]) => {
    const c = cmp(v, w);
    return { '>=': c >= 0, '<=': c <= 0, '>': c > 0, '<': c < 0, '=': c === 0 }[op];
  };
  const satisfies = (version, range) => {
    const v = parse(version);
    if (!v) return false;
    return String(range).split('||').some((alt) => {
      const terms = alt.trim().replace(/(>=|<=|>|<|=|\^|~)\s+/g, '$1').split(/\s+/).filter(Boolean);
      if (terms.length === 3 && terms[1] === '-') {
        return satisfies(version, `>=${terms[0]}`) && satisfies(version, `<=${terms[2]}`);
      }
      return terms.every((t) => {
        const cs = term(t);
        return cs !== null && cs.every((c) => test(v, c));
      });
    });
  };
  return {
    valid: (v) => (parse(v) ? String(v).replace(/^v/, '').trim() : null),
    satisfies,
    maxSatisfying: (list, range) => {
      const ok = list.filter((v) => satisfies(v, range)).map(parse);
      ok.sort(cmp);
      return ok.length ? ok[ok.length - 1].join('.') : null;
    },
  };
}

// The npm_package_* variables npm gives scripts (npm's @npmcli/run-script package-envs,
// RFC 183): name, version, config, engines and bin, objects and arrays flattened.
function packageEnv(pkg) {
  const env = {};
  const add = (vals, prefix) => {
    for (const [key, val] of Object.entries(vals)) {
      if (val === undefined) continue;
      if (val === null || val === false) env[`${prefix}${key}`] = '';
      else if (Array.isArray(val)) val.forEach((item, i) => add({ [`${key}_${i}`]: item }, prefix));
      else if (typeof val === 'object') add(val, `${prefix}${key}_`);
      else env[`${prefix}${key}`] = String(val);
    }
  };
  add({ name: pkg.name, version: pkg.version, config: pkg.config, engines: pkg.engines, bin: pkg.bin }, 'npm_package_');
  // Passed through env(1): any name without '=' works (npm's may hold '-').
  for (const k of Object.keys(env)) {
    if (k.includes('=') || k.includes('\0') || env[k].includes('\0')) delete env[k];
  }
  return env;
}

function readJson(file) {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

function main(argv) {
  const [cmd, ...args] = argv;
  switch (cmd) {
    case 'plan': {
      // Everything compile asks package.json, in one node start, as bash assignments
      // (single-quoted, so any string is safe to `eval`): this node's version,
      // engines.node, whether this node satisfies it (yes/no/empty), packageManager,
      // the scripts (name -> command), npm's package env for scripts, the package id.
      const pkg = readJson(args[0]);
      const q = (v) => `'${String(v).replace(/\0/g, '').replace(/'/g, "'\\''")}'`;
      const oneLine = (v) => (typeof v === 'string' ? v.replace(/[\r\n]+/g, ' ').trim() : '');
      const node = process.version.replace(/^v/, '');
      const engines = pkg.engines && typeof pkg.engines === 'object' ? pkg.engines : {};
      const requested = oneLine(engines.node);
      let ok = '';
      if (requested) ok = loadSemver().satisfies(node, requested) ? 'yes' : 'no';
      const s = pkg.scripts && typeof pkg.scripts === 'object' ? pkg.scripts : {};
      const scripts = Object.keys(s)
        .filter((k) => typeof s[k] === 'string' && !/[\r\n\0]/.test(k) && !s[k].includes('\0'))
        .map((k) => `[${q(k)}]=${q(s[k])}`);
      // cacheDirectories (or cache_directories): relative paths without "..".
      const dirs = Array.isArray(pkg.cacheDirectories) ? pkg.cacheDirectories
        : Array.isArray(pkg.cache_directories) ? pkg.cache_directories : [];
      const cacheDirs = dirs.filter((d) => typeof d === 'string')
        .map((d) => d.replace(/^\.\/+/, '').replace(/\/+$/, ''))
        .filter((d) => d && !d.startsWith('/') && !d.split('/').includes('..') && !/[\r\n\0]/.test(d));
      const id = typeof pkg.name === 'string' && pkg.name && typeof pkg.version === 'string' && pkg.version
        ? `${pkg.name}@${pkg.version}` : '';
      const out = [
        `plan_node_version=${q(node)}`,
        `plan_engines_node=${q(requested)}`,
        `plan_node_satisfies=${q(ok)}`,
        `plan_package_manager=${q(oneLine(pkg.packageManager))}`,
        `plan_scripts=(${scripts.join(' ')})`,
        `plan_package_env=(${Object.entries(packageEnv(pkg)).map(([k, v]) => q(`${k}=${v}`)).join(' ')})`,
        `plan_package_id=${q(id)}`,
        `plan_engines_npm=${q(oneLine(engines.npm))}`,
        `plan_engines_yarn=${q(oneLine(engines.yarn))}`,
        `plan_engines_pnpm=${q(oneLine(engines.pnpm))}`,
        `plan_engines_iojs=${q(oneLine(engines.iojs))}`,
        `plan_cache_dirs=(${cacheDirs.map(q).join(' ')})`,
      ];
      process.stdout.write(`${out.join('\n')}\n`);
      return 0;
    }
    case 'has-script': {
      const s = readJson(args[0]).scripts;
      return s && typeof s[args[1]] === 'string' ? 0 : 1;
    }
    case 'pick-lts': {
      // The newest version of the newest LTS line (nodejs.org index.json marks LTS
      // releases with their codename in "lts"): the Active LTS.
      const index = readJson(args[0]);
      const lts = index.filter((e) => e && e.lts).map((e) => String(e.version || '').replace(/^v/, ''));
      const v = loadSemver().maxSatisfying(lts, '*');
      if (v) process.stdout.write(String(v));
      return 0;
    }
    case 'pick': {
      const index = readJson(args[1]);
      const versions = index.map((e) => String(e.version || '').replace(/^v/, '')).filter(Boolean);
      const v = loadSemver().maxSatisfying(versions, args[0]);
      if (v) process.stdout.write(String(v));
      return 0;
    }
    case 'pick-list': {
      const v = loadSemver().maxSatisfying(args.slice(1), args[0]);
      if (v) process.stdout.write(String(v));
      return 0;
    }
    default:
      process.stderr.write(`unknown command ${cmd}\n`);
      return 2;
  }
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`${e.message}\n`);
  process.exitCode = 2;
}
