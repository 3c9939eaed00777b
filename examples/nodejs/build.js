// Build step (`npm run build`, run by the buildpack): uses a devDependency, which
// the buildpack prunes afterwards, and writes a file the server reads at runtime.
const isNumber = require('is-number');
const fs = require('fs');
fs.writeFileSync('build-info.json', JSON.stringify({ built: isNumber(42) }));
console.log('build-info.json written');
