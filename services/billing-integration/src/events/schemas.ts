import type { DescMessage } from '@bufbuild/protobuf';
import { file_punchcard_events_v1_billing_events } from '@punchcard/contracts/punchcard/events/v1/billing_events_pb';
import { file_punchcard_events_v1_catalogue_events } from '@punchcard/contracts/punchcard/events/v1/catalogue_events_pb';
import { file_punchcard_events_v1_expiry_events } from '@punchcard/contracts/punchcard/events/v1/expiry_events_pb';
import { file_punchcard_events_v1_ledger_events } from '@punchcard/contracts/punchcard/events/v1/ledger_events_pb';
import { file_punchcard_events_v1_refund_events } from '@punchcard/contracts/punchcard/events/v1/refund_events_pb';
import { file_punchcard_events_v1_revenue_events } from '@punchcard/contracts/punchcard/events/v1/revenue_events_pb';
import { file_punchcard_events_v1_visit_events } from '@punchcard/contracts/punchcard/events/v1/visit_events_pb';

/** Every event payload type, so the webhook fan-out can decode whatever a stream carries. */
export const EVENT_SCHEMAS: readonly DescMessage[] = [
  file_punchcard_events_v1_billing_events,
  file_punchcard_events_v1_catalogue_events,
  file_punchcard_events_v1_expiry_events,
  file_punchcard_events_v1_ledger_events,
  file_punchcard_events_v1_refund_events,
  file_punchcard_events_v1_revenue_events,
  file_punchcard_events_v1_visit_events,
].flatMap((f) => f.messages);
