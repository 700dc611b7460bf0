import test from 'ava';
const x: number = 1;
test('runs', (t) => { t.is(x, 1); t.true(process.version.startsWith('v24')); });
