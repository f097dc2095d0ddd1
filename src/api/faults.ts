// IPA's HTTP error body (WSME style): Ironic reads `faultstring` on every
// status >= 400, so every error the API emits goes through here.
export interface Fault {
  faultcode: 'Client' | 'Server';
  faultstring: string;
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  413: 'Request Entity Too Large',
  414: 'Request URI Too Long',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
};

export class HttpFault extends Error {
  constructor(
    readonly statusCode: number,
    readonly faultstring: string,
  ) {
    super(faultstring);
  }

  /** werkzeug's style: "401 Unauthorized: Token invalid." */
  static http(statusCode: number, detail: string): HttpFault {
    return new HttpFault(statusCode, `${statusCode} ${REASONS[statusCode] ?? 'Error'}: ${detail}`);
  }

  /** IPA's RESTError style: "<fixed message>: <details>". */
  static agent(statusCode: number, message: string, details: string): HttpFault {
    return new HttpFault(statusCode, `${message}: ${details}`);
  }

  get body(): Fault {
    return { faultcode: this.statusCode >= 500 ? 'Server' : 'Client', faultstring: this.faultstring };
  }
}
