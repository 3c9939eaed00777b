// package.json queries and Node.js version resolution for the Node.js buildpack.
// Runs on the stack's node. Usage:
//   node pkg.js plan FILE                  -> node version, engines.node, whether it is met,
//                                            packageManager, then script names (one per line)
//   node pkg.js has-script FILE NAME       -> exit 0 when scripts[NAME] exists
//   node pkg.js pick RANGE INDEX_FILE      -> prints the highest version in a
//                                             nodejs.org-style index.json satisfying RANGE
//   node pkg.js pick-list RANGE V1 V2 ...  -> same, from a list of versions
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

function readJson(file) {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

function main(argv) {
  const [cmd, ...args] = argv;
  switch (cmd) {
    case 'plan': {
      // Everything compile asks package.json before installing, in one node start:
      // this node's version, engines.node, whether this node satisfies it (yes/no/
      // empty), packageManager, then the script names, one per line.
      const pkg = readJson(args[0]);
      const oneLine = (v) => (typeof v === 'string' ? v.replace(/[\r\n]+/g, ' ').trim() : '');
      const node = process.version.replace(/^v/, '');
      const engines = pkg.engines && typeof pkg.engines === 'object' ? pkg.engines : {};
      const requested = oneLine(engines.node);
      let ok = '';
      if (requested) ok = loadSemver().satisfies(node, requested) ? 'yes' : 'no';
      const s = pkg.scripts && typeof pkg.scripts === 'object' ? pkg.scripts : {};
      const names = Object.keys(s).filter((k) => typeof s[k] === 'string' && !/[\r\n]/.test(k));
      process.stdout.write([node, requested, ok, oneLine(pkg.packageManager), ...names].join('\n'));
      return 0;
    }
    case 'has-script': {
      const s = readJson(args[0]).scripts;
      return s && typeof s[args[1]] === 'string' ? 0 : 1;
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
