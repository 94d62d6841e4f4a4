// The material model lives with the simulated HAL; tests import it from here.
export { DEFAULT_PLANT, flowAt, gaussian, Plant, type PlantParams, xorshift32 } from '../../nodes/rt-scale/sim-world';
