// Reads the rich error details Attain sends (google.rpc.ErrorInfo, google.rpc.BadRequest).
//
// protobuf-es ships no google.rpc types and the details are two small, frozen messages, so
// they are decoded here from their wire format instead of pulling in googleapis.
import { ConnectError } from "@connectrpc/connect";
import { BinaryReader } from "@bufbuild/protobuf/wire";

const BAD_REQUEST = "google.rpc.BadRequest";
const ERROR_INFO = "google.rpc.ErrorInfo";

/** The raw (still encoded) details of one type that came with an error from the server. */
function incoming(error: ConnectError, type: string): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const detail of error.details) {
    // Details parsed from the wire carry their type name and bytes; outgoing ones have a `desc`.
    if ("type" in detail && detail.type === type) out.push(detail.value);
  }
  return out;
}

/** Calls `onField` with each string field (number, value) of an encoded message. */
function readStrings(bytes: Uint8Array, onField: (no: number, reader: BinaryReader) => void): void {
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [no, wireType] = reader.tag();
    const start = reader.pos;
    onField(no, reader);
    if (reader.pos === start) reader.skip(wireType, no);
  }
}

/**
 * The field violations of an INVALID_ARGUMENT error, as `{field: description}`
 * (for example `{"transaction.member_id": "unknown member 'NOBODY'"}`); empty when there are none.
 */
export function fieldViolations(error: unknown): Record<string, string> {
  const violations: Record<string, string> = {};
  if (!(error instanceof ConnectError)) return violations;
  for (const bytes of incoming(error, BAD_REQUEST)) {
    // BadRequest { repeated FieldViolation field_violations = 1; }
    readStrings(bytes, (no, reader) => {
      if (no !== 1) return;
      let field = "";
      let description = "";
      // FieldViolation { string field = 1; string description = 2; ... }
      readStrings(reader.bytes(), (inner, r) => {
        if (inner === 1) field = r.string();
        else if (inner === 2) description = r.string();
      });
      violations[field] = description;
    });
  }
  return violations;
}

/** The UPPER_SNAKE reason of the error's google.rpc.ErrorInfo (e.g. `UNKNOWN_MEMBER`), or "". */
export function errorReason(error: unknown): string {
  if (!(error instanceof ConnectError)) return "";
  let reason = "";
  for (const bytes of incoming(error, ERROR_INFO)) {
    // ErrorInfo { string reason = 1; string domain = 2; map<string, string> metadata = 3; }
    readStrings(bytes, (no, reader) => {
      if (no === 1) reason = reader.string();
    });
  }
  return reason;
}
