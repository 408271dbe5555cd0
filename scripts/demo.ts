// `npm run demo`: the main job on the embedded default (see src/demo/run-demo.ts).
process.argv = [process.argv[0], 'braggflow', 'demo', ...process.argv.slice(2)];
await import('../src/cli/main.js');
