// evtypes.ts - the event types (bpf/event.h, eventjson names) and their colours, shared by the
// timeline, the live stream and the legends.
export const TYPE_COLORS: Record<string, string> = {
  read: '#3fb6a8',
  write: '#4f8cff',
  fsync: '#d29922',
  tcp_send: '#a371f7',
  tcp_recv: '#c297ff',
  conn: '#8b949e',
  retransmit: '#f778ba',
  offcpu: '#f85149',
  reclaim: '#ff7b00',
  faults: '#e3b341',
  proc: '#7ee787',
};
export const EVENT_TYPES = Object.keys(TYPE_COLORS);
