// The material model lives with the simulated HAL; tests import it from here.
export { DEFAULT_PLANT, flowAt, Plant, type PlantParams } from '../../nodes/rt-scale/sim-world';
