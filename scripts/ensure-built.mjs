// Used by npm scripts that run compiled code (migrate): install and build only when needed.
import { ensureBuilt, ensureDependencies } from './lib/setup.mjs';

ensureDependencies();
ensureBuilt();
