// The compose tier's machine side, once per run in Vitest's main process: the tools, a Docker
// engine (the machine's, or a dockerd of its own, stopped after) and the images (pulled, or local
// stand-ins). The checks (compose.spec.mjs) get the engine's address and the image record
// through inject(). Teardown takes down whatever the checks left of the stack and stops the
// engine this run started.
import { mkdirSync } from 'node:fs';
import { KEEP, LOGS, PROJECT, host } from './settings.mjs';

export default async function setup(project) {
  const h = host();
  mkdirSync(LOGS, { recursive: true });
  const cleanUp = () => {
    if (!KEEP) h.compose(['down', '-v', '--remove-orphans']);
  };
  // Ctrl-C or a CI timeout: Vitest exits 1 ms after the signal, so this handler works
  // synchronously; the checks' worker dies with it, their stack must not outlive the run.
  // `on`, not `once`: the same signal may come twice (the terminal's, and scripts/test.mjs
  // passing it on), and a second one without a handler would end the cleanup half-way.
  let stopping = false;
  const onSignal = (signal) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: stopping the compose project ${PROJECT} and the engine`);
    cleanUp();
    h.stopEngineNow();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    h.ensureTools();
    await h.ensureEngine();
    await h.ensureImages();
  } catch (err) {
    // Vitest runs no teardown for a setup that threw: stop what was started before failing.
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await h.stopEngine();
    throw err;
  }
  project.provide('composeEngine', { ...h.engineEnv });
  project.provide('composeImages', h.images);

  return async () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    cleanUp();
    await h.stopEngine();
    if (h.images.length) h.printImages();
  };
}
