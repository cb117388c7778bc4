import { describe, it, expect } from 'vitest';
import { classifyDbError, errorCode, errorMessage, isDatabaseUnavailable } from './db-errors.js';

function withCode(code: string, message = 'db error'): Error {
  return Object.assign(new Error(message), { code });
}

describe('classifyDbError', () => {
  it.each([
    ['serialization failure 40001', { code: '40001' }],
    ['deadlock 40P01', { code: '40P01' }],
    ['statement completion unknown 40003', { code: '40003' }],
    ['query canceled 57014', { code: '57014' }],
    ['admin shutdown 57P01', { code: '57P01' }],
    ['cannot connect now 57P03', { code: '57P03' }],
    ['too many connections 53300', { code: '53300' }],
    ['lock not available 55P03', { code: '55P03' }],
    ['connection failure 08006', { code: '08006' }],
    ['connection does not exist 08003', { code: '08003' }],
    ['ECONNREFUSED', { code: 'ECONNREFUSED' }],
    ['ECONNRESET', { code: 'ECONNRESET' }],
    ['ETIMEDOUT', { code: 'ETIMEDOUT' }],
    ['an Error with code 57P01', withCode('57P01', 'terminating connection due to administrator command')],
    ['an Error with code ECONNREFUSED', withCode('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:5432')],
  ])('classifies %s as transient', (_name, err) => {
    expect(classifyDbError(err)).toBe('transient');
  });

  it.each([
    'Connection terminated unexpectedly',
    'Connection terminated due to connection timeout',
    'timeout exceeded when trying to connect',
    'Client has encountered a connection error and is not queryable',
    'the database system is starting up',
    'server closed the connection unexpectedly',
  ])('classifies an Error without code, "%s", as transient', (message) => {
    expect(classifyDbError(new Error(message))).toBe('transient');
  });

  it.each([
    ['TypeORM wrapper of a deadlock', { message: 'Query failed', driverError: { code: '40P01' } }],
    ['TypeORM wrapper of a serialization failure', { message: 'Query failed', driverError: { code: '40001' } }],
    ['TypeORM wrapper of a refused connection', { message: 'Query failed', driverError: { code: 'ECONNREFUSED' } }],
  ])('looks through a %s', (_name, err) => {
    expect(classifyDbError(err)).toBe('transient');
  });

  it.each([
    ['invalid byte sequence 22021', { code: '22021' }],
    ['numeric value out of range 22003', { code: '22003' }],
    ['invalid datetime 22007', { code: '22007' }],
    ['not null violation 23502', { code: '23502' }],
    ['check violation 23514', { code: '23514' }],
    ['TypeORM wrapper of 22021', { message: 'Query failed', driverError: { code: '22021' } }],
  ])('classifies %s as data', (_name, err) => {
    expect(classifyDbError(err)).toBe('data');
  });

  it('prefers the driver error code over the wrapper code', () => {
    expect(classifyDbError({ code: '42P01', driverError: { code: '23502' } })).toBe('data');
  });

  it.each([
    ['undefined table 42P01', { code: '42P01' }],
    ['syntax error 42601', { code: '42601' }],
    ['an Error without code', new Error('something else')],
    ['a string', 'boom'],
    ['null', null],
    ['undefined', undefined],
    ['a numeric code', { code: 40001 }],
  ])('classifies %s as unknown', (_name, err) => {
    expect(classifyDbError(err)).toBe('unknown');
  });
});

describe('errorCode', () => {
  it('returns the code of an error or its TypeORM wrapper', () => {
    expect(errorCode({ code: '23502' })).toBe('23502');
    expect(errorCode({ driverError: { code: '40P01' } })).toBe('40P01');
    expect(errorCode(withCode('ECONNRESET'))).toBe('ECONNRESET');
  });

  it('returns undefined when there is no string code', () => {
    expect(errorCode(new Error('x'))).toBeUndefined();
    expect(errorCode({ code: 1 })).toBeUndefined();
    expect(errorCode(null)).toBeUndefined();
    expect(errorCode('40001')).toBeUndefined();
  });
});

describe('errorMessage', () => {
  it('returns the message of an Error and the string form of anything else', () => {
    expect(errorMessage(new Error('boom'))).toBe('boom');
    expect(errorMessage('plain')).toBe('plain');
    expect(errorMessage(42)).toBe('42');
  });
});

describe('isDatabaseUnavailable', () => {
  it('is true for transient errors and for a DataSource that is not connected', () => {
    expect(isDatabaseUnavailable({ code: 'ECONNREFUSED' })).toBe(true);
    expect(isDatabaseUnavailable({ code: '57P03' })).toBe(true);
    const notConnected = new Error('Cannot execute operation on "default" connection because connection is not yet established.');
    notConnected.name = 'CannotExecuteNotConnectedError';
    expect(isDatabaseUnavailable(notConnected)).toBe(true);
  });

  it('is false for data errors and programming errors', () => {
    expect(isDatabaseUnavailable({ code: '22021' })).toBe(false);
    expect(isDatabaseUnavailable({ code: '42P01' })).toBe(false);
    expect(isDatabaseUnavailable(new TypeError('x is undefined'))).toBe(false);
  });
});
