import { HttpException } from '@nestjs/common';
import type { FieldError } from '#libs/readings';

export interface ErrorBody {
  error: { code: string; message: string; details: FieldError[] };
}

export function errorBody(code: string, message: string, details: FieldError[] = []): ErrorBody {
  return { error: { code, message, details } };
}

/** An HTTP error whose body is already in the API's JSON error shape. */
export class ApiError extends HttpException {
  constructor(status: number, code: string, message: string, details: FieldError[] = [], readonly headers: Record<string, string> = {}) {
    super(errorBody(code, message, details), status);
  }
}

export const CODE_FOR_STATUS: Record<number, string> = {
  400: 'bad_request',
  404: 'not_found',
  405: 'method_not_allowed',
  409: 'conflict',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  422: 'invalid_reading',
  429: 'rate_limited',
  503: 'unavailable',
};
