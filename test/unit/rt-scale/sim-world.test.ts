// The simulated plant: the transport delay jitters, but duty changes take
// effect in the order they were made (material cannot overtake itself).
import assert from 'node:assert/strict';

import { DEFAULT_PLANT, Plant } from '../../../nodes/rt-scale/sim-world';

describe('sim-world Plant', () => {
  it('a stop right after a repeated full-speed command stays a stop, whatever the jitter', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const plant = new Plant({ ...DEFAULT_PLANT, seed, jitterS: 0.005 });
      let t = 0;
      // full speed repeated on every 12.5 ms sample, as a controller does
      for (; t < 1_000_000; t += 12_500) {
        plant.advance(t);
        plant.setDuty(1000, t);
      }
      plant.setDuty(0, t - 12_500 + 1_000); // stop 1 ms after the last full-speed command
      plant.advance(t + 1_000_000); // well past the transport delay
      const m = plant.mass;
      plant.advance(t + 2_000_000);
      assert.equal(plant.mass, m, `seed ${seed}: the material keeps flowing after the stop`);
    }
  });
});
