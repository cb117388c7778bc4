// First step of the npm scripts that run an npm package's binary (eslint, tsc): installs the npm
// dependencies when they are missing, so that the script also works as the first command after a
// clone. Node built-ins only.
import { ensureDependencies } from './lib/setup.mjs';

ensureDependencies();
