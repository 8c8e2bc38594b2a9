import { describe, expectTypeOf, it } from 'vitest';

import type { ViewerBundle } from './panel';

// The tab loads the viewer bundle from the server at run time, so no import checks that the two agree:
// this type test does (tsc in `jlpm test`; nothing to run).
describe('the viewer bundle', () => {
  it('exports what the JupyterLab tab calls', () => {
    expectTypeOf<typeof import('../viewer/main')>().toExtend<ViewerBundle>();
  });
});
