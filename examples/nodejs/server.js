// Hoist example app: answers every request on $PORT.
const http = require('http');
const ms = require('ms');
const build = require('./build-info.json');

const port = Number(process.env.PORT || 5000);
http
  .createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end(`Hello from Node.js ${process.version}, dep ok (ms('2d') = ${ms('2d')}), build ${build.built ? 'ok' : 'missing'}\n`);
  })
  .listen(port, () => console.log(`listening on ${port}`));
