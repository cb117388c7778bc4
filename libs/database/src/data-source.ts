import { DataSource } from 'typeorm';
import { loadConfigOrExit } from '../../config/src/index.js';
import { buildDataSourceOptions } from './data-source.options.js';

/** Entry for TypeORM's own CLI (migration:show, migration:revert): the same options as runtime. */
export default new DataSource(
  buildDataSourceOptions(loadConfigOrExit().db, 'meter-intake-cli', (err) => console.error('pool error', err)),
);
