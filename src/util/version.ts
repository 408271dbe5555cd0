/** braggflow's version, as package.json has it (recorded in model files and their provenance). */
export const BRAGGFLOW_VERSION = '0.1.0';
