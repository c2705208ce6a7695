// The generated client against the real Python server over gRPC: a sale in, progress out.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  Colour,
  CycleState,
  Kpi,
  PeriodKind,
  RecordOutcome,
  TransactionType,
  createAttainClient,
  errorReason,
  fieldViolations,
  type AttainClient,
} from "../src/index.js";
import { startServer, type RunningServer } from "./server.js";

let server: RunningServer;
let attain: AttainClient;

before(async () => {
  server = await startServer();
  attain = createAttainClient(server.address, server.key);
});

after(async () => {
  await server?.stop();
});

/** Awaits a call that must fail and returns its ConnectError. */
async function fails(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (error) {
    return ConnectError.from(error);
  }
  assert.fail("the call succeeded");
}

function sale(id: string, memberId: string, amount: string) {
  return {
    id,
    memberId,
    occurredTime: timestampFromDate(new Date()),
    storeId: "S1",
    type: TransactionType.SALE,
    lines: [{ sku: "SKU-1", quantity: { value: "1" }, amount: { value: amount } }],
  };
}

function points(value: bigint) {
  return { case: "points" as const, value };
}

test("records a sale and reads the member's progress", async () => {
  // SPEC example 1's target: monthly total transaction, FIXED 1,000 points at 100%.
  await attain.targets.createTarget({
    target: {
      code: "NOV-SALES",
      displayName: "November sales",
      criteria: [{ kpi: Kpi.TRANSACTION_AMOUNT, targetValue: { value: "10000.00" } }],
      period: { kind: PeriodKind.MONTHLY, startDate: "2026-01-01" },
      rules: [{ kind: { case: "fixed", value: { incentive: { incentive: points(1000n) } } } }],
    },
  });
  await attain.targets.upsertMember({ member: { externalId: "M-001", level: "GOLD" } });

  const transaction = sale("T-1", "M-001", "4000");
  const recorded = await attain.progress.recordTransaction({ transaction });
  assert.equal(recorded.outcome, RecordOutcome.ACCEPTED);
  assert.deepEqual(recorded.progress.map((p) => p.achievedValue?.value), ["4000"]);

  const { progress } = await attain.progress.getProgress({
    memberId: "M-001",
    targetCode: "NOV-SALES",
  });
  assert.ok(progress);
  // Decimals stay strings end to end: exactly what the server computed, never a JS number.
  assert.equal(progress.targetValue?.value, "10000.00");
  assert.equal(progress.achievedValue?.value, "4000");
  assert.equal(progress.remainingValue?.value, "6000.00");
  assert.equal(progress.attainmentPercent?.value, "40");
  assert.equal(progress.attainmentDisplay, "40.00");
  assert.equal(progress.colour, Colour.RED);
  assert.equal(progress.cycleState, CycleState.OPEN);
  assert.equal(progress.complete, false);

  // The transaction id makes ingestion idempotent: the same sale again counts once.
  const again = await attain.progress.recordTransaction({ transaction });
  assert.equal(again.outcome, RecordOutcome.DUPLICATE);
});

test("a bad request names the field and the reason", async () => {
  const error = await fails(
    attain.progress.recordTransaction({ transaction: sale("X-1", "NOBODY", "1") }),
  );
  assert.equal(error.code, Code.InvalidArgument);
  assert.equal(errorReason(error), "UNKNOWN_MEMBER");
  assert.deepEqual(fieldViolations(error), {
    "transaction.member_id": "unknown member 'NOBODY'",
  });
});

test("a wrong key is refused as unauthenticated", async () => {
  const stranger = createAttainClient(server.address, "atn_0000_not-a-real-key");
  const error = await fails(
    stranger.progress.getProgress({ memberId: "M-001", targetCode: "NOV-SALES" }),
  );
  assert.equal(error.code, Code.Unauthenticated);
  assert.equal(errorReason(error), "INVALID_CREDENTIALS");
});
