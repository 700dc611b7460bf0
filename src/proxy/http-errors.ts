// The one place a failure becomes an HTTP status.
import type { Failure, RegistryError } from '../oci/errors.ts';

const STATUS: Record<Failure, number> = {
  invalid: 400,
  unauthorized: 401,
  denied: 403,
  'not-found': 404,
  method: 405,
  conflict: 409,
  'too-large': 413,
  unsatisfiable: 416,
  unprocessable: 422,
  'rate-limited': 429,
  internal: 500,
  upstream: 502,
  unavailable: 503,
  timeout: 504,
};

export function httpStatus(err: RegistryError): number {
  return STATUS[err.failure];
}

/** Headers an error response carries besides its JSON body. */
export function errorHeaders(err: RegistryError): Record<string, string> {
  return {
    ...(err.retryAfter === undefined ? {} : { 'retry-after': err.retryAfter }),
    ...(err.challenge === undefined ? {} : { 'www-authenticate': err.challenge }),
  };
}
