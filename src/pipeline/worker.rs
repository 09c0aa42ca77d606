//! A worker: owns a flow table with each flow's application-layer state, and turns its packets
//! into flow, protocol and anomaly events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use vigil_parsers::app::{AppProto, AppRecord, Direction};

use super::batch::{Batch, Slot, SlotKind};
use super::dispatcher::RingSpace;
use crate::anomaly::{AnomalyTap, DnsSeen};
use crate::applayer::{
    collect_rule_events, drop_packet_only_events, take_record_events, AppItem, AppLayer,
    AppLayerConfig, AppLayerStats, AppPacket, FlowApp, STREAM_LOOKBACK,
};
use crate::detect::{PacketPlace, StreamWindow, WorkerDetect};
use crate::flow::key::PROTO_TCP;
use crate::flow::{FlowKey, FlowRecord, FlowStats, FlowTable, FlowTableConfig};
use crate::output::eve::{
    AlertCapture, AlertCaptureConfig, AnomalyEvent, AppEvent, AppEventKind, EveEvent, FlowVarsLog,
};
use crate::response::tap::{PacketView, ResponseTap};

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub flow: FlowTableConfig,
    /// Most anomaly events one worker writes per second of packet time; the rest are counted.
    pub anomaly_events_per_second: u32,
    pub app_layer: AppLayerConfig,
    /// This worker's share of the stream reassembly memcap.
    pub stream_memcap_bytes: usize,
    /// Live capture: when the output queue is full, drop a batch of events (counted) rather
    /// than stall the capture ring, unless it holds an alert; alerts are always waited for.
    /// Replay waits for every batch (nothing is lost in forensics).
    pub shed_events_when_output_full: bool,
    /// What alerts carry of the packet that raised them (`[eve] payload`, `packet`, …).
    pub alert_capture: Option<AlertCaptureConfig>,
}

#[derive(Debug, Clone, Default)]
pub struct WorkerReport {
    pub flow: FlowStats,
    pub app_layer: AppLayerStats,
    pub app_events: crate::stats::AppEventCounts,
    pub packets: u64,
    pub anomaly_events: u64,
    pub anomalies_suppressed: u64,
    pub flow_events: u64,
    pub alerts: u64,
    pub alerts_by_severity: [u64; 4],
    /// `alerts` per rule.
    pub rule_alerts: crate::stats::RuleAlertCounts,
    /// Times this worker found the output queue full and waited for the output thread, and
    /// for how long in all: zero while the outputs keep up.
    pub output_waits: u64,
    pub output_wait_ns: u64,
    /// Events dropped because the output queue was full (live capture only; never alerts).
    pub events_dropped: u64,
}

/// Events and anomaly observations are handed to their threads at most this often, or as soon
/// as [`HANDOVER_AT`] of either wait, rather than after every batch: a hand-over usually wakes a
/// sleeping thread on the other core, the reader's core, and per batch (~900 per 200 MB
/// replayed with ET Open) those wake-ups took the output and anomaly threads ~2.4 % of all
/// samples; now ~0.9 %. Larger hand-overs keep more alive at once: at 1,024 the peak RSS of a
/// replay without rules grew by 12 MB, at 256 by 4 MB. A quiet live interface still gets a batch
/// per second (the clock tick), so nothing waits much longer than that.
const HANDOVER_EVERY: Duration = Duration::from_millis(50);
const HANDOVER_AT: usize = 256;

/// Messages of events each worker may have queued for the output thread (the capacity of the
/// events channel, per worker): each holds up to [`HANDOVER_AT`] events (more only when one batch
/// alone raised more) or [`HANDOVER_EVERY`] of them, so a stalled output holds ~16k events per
/// worker, or ~3 s of a quiet one, before workers wait (replay) or shed (live).
pub const EVENT_MESSAGES_QUEUED: usize = 64;

pub struct Worker {
    table: FlowTable<FlowApp>,
    app: AppLayer,
    /// Signature detection, when rules are loaded.
    detect: Option<WorkerDetect>,
    /// Active response: alerts that call for an action go to the responder.
    response: Option<ResponseTap>,
    /// Anomaly models: ended flows and DNS messages go to the anomaly thread.
    anomaly: Option<AnomalyTap>,
    /// Application-layer findings of the packet or flow end being handled.
    items: Vec<AppItem>,
    /// Protocol detection's events on the packet being inspected (`app-layer-event`).
    packet_app_events: Vec<&'static str>,
    /// The parser events of the record being inspected.
    record_events: Vec<vigil_parsers::app::AppEvent>,
    ended: Vec<FlowRecord>,
    /// Rule variables of `ended` flows, index for index (missing ones are `None`).
    ended_vars: Vec<Option<Box<FlowVarsLog>>>,
    events: Vec<EveEvent>,
    events_tx: Sender<Vec<EveEvent>>,
    /// Batches the output thread is done with, to be freed here (see [`Worker::set_spent`]).
    spent: Option<Receiver<Vec<EveEvent>>>,
    anomaly_budget: u32,
    /// Latest packet time seen.
    now_ns: u64,
    anomaly_second: u64,
    anomaly_limit: u32,
    shed_events_when_output_full: bool,
    alert_capture: Option<AlertCaptureConfig>,
    /// When the events and observations gathered are handed over at the latest.
    next_handover: Instant,
    report: WorkerReport,
}

impl Worker {
    pub fn new(
        config: WorkerConfig,
        detect: Option<WorkerDetect>,
        events_tx: Sender<Vec<EveEvent>>,
    ) -> Worker {
        let mut app = AppLayer::new(config.app_layer, config.stream_memcap_bytes);
        app.follow_rules(detect.as_ref().map(WorkerDetect::rules));
        Worker {
            table: FlowTable::new(config.flow),
            app,
            detect,
            response: None,
            anomaly: None,
            items: Vec::new(),
            packet_app_events: Vec::new(),
            record_events: Vec::new(),
            ended: Vec::with_capacity(1024),
            ended_vars: Vec::with_capacity(1024),
            events: Vec::new(),
            events_tx,
            spent: None,
            anomaly_budget: config.anomaly_events_per_second,
            now_ns: 0,
            anomaly_second: 0,
            anomaly_limit: config.anomaly_events_per_second,
            shed_events_when_output_full: config.shed_events_when_output_full,
            alert_capture: config.alert_capture,
            next_handover: Instant::now() + HANDOVER_EVERY,
            report: WorkerReport::default(),
        }
    }

    /// Processes batches until the ring closes, then ends every flow and reports.
    pub fn run(
        mut self,
        rx: Receiver<Batch>,
        space: Arc<RingSpace>,
        recycle_tx: Sender<Batch>,
    ) -> WorkerReport {
        for batch in &rx {
            space.taken(rx.len());
            self.handle_batch(&batch);
            // The reader may have stopped taking batches back; that only costs an allocation.
            let _ = recycle_tx.try_send(batch);
        }
        self.finish()
    }

    /// Processes one batch; hands the events and observations gathered so far over when
    /// enough have gathered or enough time has passed (see [`HANDOVER_EVERY`]).
    pub fn handle_batch(&mut self, batch: &Batch) {
        for slot in &batch.slots {
            self.process(batch, slot);
        }
        self.emit_ended();
        let now = Instant::now();
        let anomaly_pending = self.anomaly.as_ref().map_or(0, AnomalyTap::pending);
        if now >= self.next_handover
            || self.events.len() >= HANDOVER_AT
            || anomaly_pending >= HANDOVER_AT
        {
            self.next_handover = now + HANDOVER_EVERY;
            self.send_events();
            if let Some(tap) = &mut self.anomaly {
                tap.flush();
            }
        }
    }

    /// Ends every flow (writing its record) and reports.
    pub fn finish(mut self) -> WorkerReport {
        self.table.flush_all(&mut self.ended);
        self.end_flows(0);
        self.emit_ended();
        self.send_events();
        if let Some(tap) = &mut self.anomaly {
            tap.flush();
        }
        self.report()
    }

    /// Counters so far.
    pub fn report(&self) -> WorkerReport {
        let mut report = self.report.clone();
        report.flow = self.table.stats();
        report.app_layer = self.app.stats();
        if let Some(d) = &self.detect {
            report.alerts += d.alerts;
            d.rule_alerts(&mut report.rule_alerts);
            for (sum, n) in report
                .alerts_by_severity
                .iter_mut()
                .zip(d.alerts_by_severity)
            {
                *sum += n;
            }
        }
        report
    }

    /// Takes back event batches the output thread has written. Their events were allocated
    /// here, and freeing them here is mimalloc's local fast path; on the output thread each
    /// free went to another thread's queue, which this thread then had to collect (together a
    /// tenth of the output thread's time on an event-heavy capture). The batch's capacity is
    /// reused for the next one.
    pub fn set_spent(&mut self, spent: Option<Receiver<Vec<EveEvent>>>) {
        self.spent = spent;
    }

    /// Hands alerts that call for an action (rule action, policy) to the responder.
    pub fn set_response(&mut self, tap: Option<ResponseTap>) {
        self.response = tap;
    }

    /// Feeds the anomaly models.
    pub fn set_anomaly(&mut self, tap: Option<AnomalyTap>) {
        self.anomaly = tap;
    }

    /// Swaps the signatures in use (a reload); flows keep their state. The alerts counted by
    /// the old set stay in the report, per rule under the old set's (gid, sid, rev).
    pub fn set_detect(&mut self, detect: Option<WorkerDetect>) {
        self.app
            .follow_rules(detect.as_ref().map(WorkerDetect::rules));
        if let Some(old) = std::mem::replace(&mut self.detect, detect) {
            self.report.alerts += old.alerts;
            old.rule_alerts(&mut self.report.rule_alerts);
            for (sum, n) in self
                .report
                .alerts_by_severity
                .iter_mut()
                .zip(old.alerts_by_severity)
            {
                *sum += n;
            }
        }
    }

    fn process(&mut self, batch: &Batch, slot: &Slot) {
        self.now_ns = self.now_ns.max(slot.ts_ns);
        match slot.kind {
            SlotKind::Tick => {
                let from = self.ended.len();
                self.table.expire(slot.ts_ns, &mut self.ended);
                self.end_flows(from);
            }
            SlotKind::Packet => {
                self.report.packets += 1;
                if let Some((key, side)) = FlowKey::from_packet(&slot.decoded) {
                    let from = self.ended.len();
                    let idx = self.table.update_flow(
                        slot.ts_ns,
                        &key,
                        side,
                        &slot.decoded,
                        slot.wire_bytes,
                        &mut self.ended,
                    );
                    // Flows ended on the way give up their state before this one uses its own.
                    self.end_flows(from);
                    let pkt = &slot.decoded;
                    let bytes = batch.packet_bytes(slot);
                    let start = pkt.payload_offset as usize;
                    let payload = bytes
                        .get(start..start + pkt.payload_len as usize)
                        .unwrap_or_default();
                    let (rec, app) = self.table.entry(idx);
                    let dir = if rec.is_from_client(side) {
                        Direction::ToServer
                    } else {
                        Direction::ToClient
                    };
                    let server_port = rec.ports.map_or(0, |p| p.1);
                    let packet = AppPacket {
                        pkt,
                        dir,
                        server_port,
                        payload,
                        ts_ns: slot.ts_ns,
                    };
                    // Where this packet's direction stood before the packet (a flow's first
                    // packet creates its stream at 0): what reassembly hands on now is new to
                    // stream inspection.
                    let stream_from = app.stream_offset(dir).unwrap_or(0);
                    // As Suricata, a flow stops payload inspection from the packet after the
                    // one whose data ended the handshake (SSH NEWKEYS, TLS): that one still is.
                    let inspected = app.payload_inspected();
                    self.app.on_packet(app, packet, &mut self.items);
                    if let Some(detect) = self.detect.as_mut() {
                        let place = PacketPlace {
                            pcap_cnt: slot.pcap_cnt,
                            file_index: slot.file_index,
                        };
                        let first_event = self.events.len();
                        // Flows without application-layer state (ICMP, other protocols) keep no
                        // rule variables between packets yet.
                        let mut no_vars = vigil_signatures::FlowVars::default();
                        let mut no_tx = [0; 2];
                        let mut no_events = Vec::new();
                        let (vars, proto, stream, tx_raw_from, pending) = match app.detect_state() {
                            Some(s) => (s.vars, s.proto, s.stream, s.tx_raw_from, s.pending_events),
                            None => (
                                &mut no_vars,
                                AppProto::Unknown,
                                None,
                                &mut no_tx,
                                &mut no_events,
                            ),
                        };
                        collect_rule_events(&self.items, &mut self.packet_app_events, pending);
                        let window = stream.and_then(|s| packet_window(s, dir, stream_from));
                        let mut alerted = detect.packet(
                            pkt,
                            bytes,
                            payload,
                            inspected,
                            rec,
                            dir,
                            proto,
                            window,
                            &self.packet_app_events,
                            vars,
                            slot.ts_ns,
                            place,
                            &mut self.events,
                        );
                        let mut records = false;
                        for item in &self.items {
                            if let AppItem::Record(_, record) = item {
                                records = true;
                                take_record_events(pending, record, &mut self.record_events);
                                // Over UDP the datagram that completed the record is its
                                // raw stream, as in Suricata.
                                let raw = match stream {
                                    Some(s) => tx_windows(s, tx_raw_from),
                                    None if dir == Direction::ToServer => {
                                        [Some((0, payload)), None]
                                    }
                                    None => [None, Some((0, payload))],
                                };
                                alerted |= detect.record(
                                    record,
                                    raw,
                                    &self.record_events,
                                    rec,
                                    vars,
                                    slot.ts_ns,
                                    Some(place),
                                    &mut self.events,
                                );
                            }
                        }
                        drop_packet_only_events(pending);
                        if let Some(s) = stream.filter(|_| records) {
                            // The next transaction's raw stream starts here.
                            *tx_raw_from =
                                [s.offset(Direction::ToServer), s.offset(Direction::ToClient)];
                        }
                        if alerted {
                            rec.alerted = true;
                            attach_capture(
                                &mut self.events[first_event..],
                                self.alert_capture,
                                (bytes, slot.link),
                                payload,
                                window.map_or(&[][..], |w| w.bytes),
                            );
                            if let Some(tap) = &mut self.response {
                                let view = PacketView { pkt, bytes };
                                tap.on_alerts(&self.events[first_event..], Some(view));
                            }
                        }
                        if let Some(offsets) = stream.map(|s| {
                            [Direction::ToServer, Direction::ToClient].map(|d| s.offset(d))
                        }) {
                            // Keep what the next packets' stream inspection looks back on, and
                            // the transaction's bytes where its rules inspect the raw stream.
                            let from = [Direction::ToServer, Direction::ToClient].map(|d| {
                                let i = usize::from(d == Direction::ToClient);
                                let back = offsets[i].saturating_sub(STREAM_LOOKBACK);
                                if detect.tx_inspects_stream(proto, d) {
                                    back.min(tx_raw_from[i])
                                } else {
                                    back
                                }
                            });
                            self.app.keep_raw_from(app, Direction::ToServer, from[0]);
                            self.app.keep_raw_from(app, Direction::ToClient, from[1]);
                        }
                    }
                    if !self.items.is_empty() {
                        let rec = *rec;
                        let at = Some((slot.pcap_cnt, slot.file_index));
                        self.emit_items(&rec, Some(dir), slot.ts_ns, at);
                    }
                } else if let Some(detect) = self.detect.as_mut() {
                    let bytes = batch.packet_bytes(slot);
                    let pkt = &slot.decoded;
                    let start = pkt.payload_offset as usize;
                    let payload = bytes
                        .get(start..start + pkt.payload_len as usize)
                        .unwrap_or_default();
                    let first_event = self.events.len();
                    let alerted = detect.packet_without_flow(
                        pkt,
                        bytes,
                        payload,
                        slot.ts_ns,
                        PacketPlace {
                            pcap_cnt: slot.pcap_cnt,
                            file_index: slot.file_index,
                        },
                        &mut self.events,
                    );
                    if alerted {
                        attach_capture(
                            &mut self.events[first_event..],
                            self.alert_capture,
                            (bytes, slot.link),
                            payload,
                            &[],
                        );
                    }
                    if let Some(tap) = self.response.as_mut().filter(|_| alerted) {
                        let view = PacketView { pkt, bytes };
                        tap.on_alerts(&self.events[first_event..], Some(view));
                    }
                }
                self.emit_anomalies(slot);
            }
            SlotKind::AnomalyOnly => {
                if let Some(detect) = self.detect.as_mut() {
                    let place = PacketPlace {
                        pcap_cnt: slot.pcap_cnt,
                        file_index: slot.file_index,
                    };
                    detect.packet_without_flow(
                        &slot.decoded,
                        &[],
                        &[],
                        slot.ts_ns,
                        place,
                        &mut self.events,
                    );
                }
                self.emit_anomalies(slot);
            }
        }
    }

    /// Hands the application-layer state of flows ended from `ended[from..]` on: flushes their
    /// streams and parsers, reports what is pending and sets their `app_proto`.
    ///
    /// Their events carry the time the flow ended (the packet time that ended it), as
    /// Suricata's flow-end pseudo packets do.
    fn end_flows(&mut self, from: usize) {
        if self.ended.len() == from {
            return;
        }
        let apps: Vec<FlowApp> = self.table.take_ended_apps().collect();
        let ts_ns = self.now_ns;
        // `ended_vars[i]` goes with `ended[i]`.
        self.ended_vars.resize(from, None);
        for (i, mut app) in (from..).zip(apps) {
            let mut vars = app.take_rule_vars();
            let mut pending = app.take_pending_events();
            let (proto, orig) = self.app.on_flow_end(app, ts_ns, &mut self.items);
            self.ended[i].app_proto = proto;
            self.ended[i].app_proto_orig = orig;
            if let Some(detect) = self.detect.as_mut() {
                let rec = self.ended[i];
                let first_event = self.events.len();
                let mut alerted = false;
                collect_rule_events(&self.items, &mut self.packet_app_events, &mut pending);
                for item in &self.items {
                    if let AppItem::Record(_, record) = item {
                        take_record_events(&mut pending, record, &mut self.record_events);
                        alerted |= detect.record(
                            record,
                            [None, None],
                            &self.record_events,
                            &rec,
                            &mut vars,
                            ts_ns,
                            None,
                            &mut self.events,
                        );
                    }
                }
                self.ended[i].alerted |= alerted;
                // The flow is over: blocks may still apply, resets have nothing to tear down.
                if let Some(tap) = self.response.as_mut().filter(|_| alerted) {
                    tap.on_alerts(&self.events[first_event..], None);
                }
            }
            if !self.items.is_empty() {
                let rec = self.ended[i];
                self.emit_items(&rec, None, ts_ns, None);
            }
            let vars_log = self.detect.as_ref().and_then(|d| d.flow_vars_log(&vars));
            self.ended_vars.push(vars_log);
        }
    }

    /// Turns application-layer findings into events, oriented as Suricata orients them:
    /// transactions from client to server, DNS responses and anomalies as their packet went.
    fn emit_items(
        &mut self,
        rec: &FlowRecord,
        packet_dir: Option<Direction>,
        ts_ns: u64,
        packet: Option<(u64, u32)>,
    ) {
        // Taken out and put back so its capacity is reused packet after packet.
        let mut items = std::mem::take(&mut self.items);
        for item in items.drain(..) {
            let (dir, tx_id, kind) = match item {
                AppItem::Record(dir, record) => {
                    // The models see every DNS message, logged or not.
                    if let (Some(tap), AppRecord::Dns(msg)) = (&mut self.anomaly, &record) {
                        if let Some(q) = msg.queries.first() {
                            tap.dns(DnsSeen {
                                ts_ns,
                                client: rec.client_addr,
                                server: rec.server_addr,
                                flow_id: rec.flow_id,
                                is_response: msg.is_response,
                                rcode: (msg.flags & 0x000f) as u8,
                                qname: String::from_utf8_lossy(&q.name.value).into_owned(),
                                qtype: q.rrtype,
                            });
                        }
                    }
                    if !record.is_logged() {
                        continue;
                    }
                    let dir = match record {
                        AppRecord::Dns(_) => dir,
                        _ => Direction::ToServer,
                    };
                    let tx_id = record.tx_id();
                    self.report
                        .app_events
                        .count(record.proto(), rec.proto == PROTO_TCP);
                    if let AppRecord::Http(tx) = &record {
                        self.emit_files(rec, tx, ts_ns, packet);
                    }
                    (dir, tx_id, AppEventKind::Record(record))
                }
                AppItem::ParserEvent(e) => {
                    if !self.take_anomaly_budget(ts_ns) {
                        continue;
                    }
                    (
                        e.direction,
                        e.tx_id,
                        AppEventKind::Anomaly {
                            kind: "applayer",
                            event: e.event,
                            app_proto: Some(e.proto),
                            layer: Some("proto_parser"),
                        },
                    )
                }
                AppItem::DetectEvent(proto, event) => {
                    if !self.take_anomaly_budget(ts_ns) {
                        continue;
                    }
                    (
                        packet_dir.unwrap_or(Direction::ToServer),
                        None,
                        AppEventKind::Anomaly {
                            kind: "applayer",
                            event,
                            app_proto: (proto != AppProto::Unknown).then_some(proto),
                            layer: Some("proto_detect"),
                        },
                    )
                }
                AppItem::StreamEvent(dir, event) => {
                    if !self.take_anomaly_budget(ts_ns) {
                        continue;
                    }
                    (
                        dir,
                        None,
                        AppEventKind::Anomaly {
                            kind: "stream",
                            event,
                            app_proto: None,
                            layer: None,
                        },
                    )
                }
            };
            self.events.push(EveEvent::App(Box::new(AppEvent::of_flow(
                rec, dir, ts_ns, packet, tx_id, kind,
            ))));
        }
        self.items = items;
    }

    /// One `fileinfo` event per file the transaction carried, oriented as the file travelled
    /// (a download from the server), as Suricata logs them.
    fn emit_files(
        &mut self,
        rec: &FlowRecord,
        tx: &std::sync::Arc<vigil_parsers::app::http::HttpTransaction>,
        ts_ns: u64,
        packet: Option<(u64, u32)>,
    ) {
        for file in tx.files() {
            self.report.app_events.files += 1;
            let (dir, tx_id) = (file.direction, Some(tx.tx_id));
            let kind = AppEventKind::File {
                tx: std::sync::Arc::clone(tx),
                file,
            };
            self.events.push(EveEvent::App(Box::new(AppEvent::of_flow(
                rec, dir, ts_ns, packet, tx_id, kind,
            ))));
        }
    }

    /// Takes one anomaly event from this second's budget; false (and counted) when it is spent.
    fn take_anomaly_budget(&mut self, ts_ns: u64) -> bool {
        // Only a later second renews the budget: events of ended flows carry their last packet's
        // (earlier) time, and going back to it must not hand out a second budget.
        let second = ts_ns / 1_000_000_000;
        if second > self.anomaly_second {
            self.anomaly_second = second;
            self.anomaly_budget = self.anomaly_limit;
        }
        if self.anomaly_budget == 0 {
            self.report.anomalies_suppressed += 1;
            return false;
        }
        self.anomaly_budget -= 1;
        self.report.anomaly_events += 1;
        true
    }

    fn emit_anomalies(&mut self, slot: &Slot) {
        let pkt = &slot.decoded;
        if pkt.anomaly_count == 0 {
            return;
        }

        let l3 = (pkt.kind == vigil_parsers::PacketKind::Ip).then_some((
            pkt.l3.src,
            pkt.l3.dst,
            pkt.l3.proto,
        ));
        for a in pkt.anomalies() {
            if !self.take_anomaly_budget(slot.ts_ns) {
                continue;
            }
            self.events.push(EveEvent::Anomaly(AnomalyEvent {
                ts_ns: slot.ts_ns,
                pcap_cnt: slot.pcap_cnt,
                event: a.event,
                l3,
                ports: pkt.ports(),
                vlans: pkt.vlans,
                vlan_count: pkt.vlan_count,
                tunnel: pkt.tunnel,
                file_index: slot.file_index,
            }));
        }
    }

    /// An empty batch for the next events: a spent one when the output thread sent one back
    /// (others waiting are freed too), else a new one.
    fn spent_batch(&mut self) -> Vec<EveEvent> {
        let Some(spent) = &self.spent else {
            return Vec::new();
        };
        let mut reuse: Option<Vec<EveEvent>> = None;
        for mut batch in spent.try_iter() {
            batch.clear();
            if reuse
                .as_ref()
                .is_none_or(|r| r.capacity() < batch.capacity())
            {
                reuse = Some(batch);
            }
        }
        reuse.unwrap_or_default()
    }

    fn emit_ended(&mut self) {
        if let Some(tap) = &mut self.anomaly {
            tap.flows_ended(&self.ended);
        }
        self.report.flow_events += self.ended.len() as u64;
        self.events.extend(
            self.ended
                .drain(..)
                .zip(self.ended_vars.drain(..).chain(std::iter::repeat(None)))
                .map(|(f, vars)| EveEvent::Flow(f, vars)),
        );
    }

    /// Hands this batch's events to the output thread in one message.
    fn send_events(&mut self) {
        if self.events.is_empty() {
            return;
        }
        let next = self.spent_batch();
        let events = std::mem::replace(&mut self.events, next);
        // The output thread only goes away when the run is being torn down after an error.
        if let Err(TrySendError::Full(events)) = self.events_tx.try_send(events) {
            if self.shed_events_when_output_full
                && !events
                    .iter()
                    .any(|e| e.event_type() == crate::output::sink::EventType::Alert)
            {
                self.report.events_dropped += events.len() as u64;
                return;
            }
            let started = std::time::Instant::now();
            let _ = self.events_tx.send(events);
            self.report.output_waits += 1;
            self.report.output_wait_ns += started.elapsed().as_nanos() as u64;
        }
    }
}

/// Gives the alerts among `events` (all raised by one packet) the packet's bytes that `config`
/// asks for: copied here, once the packet alerted, so other packets cost nothing.
fn attach_capture(
    events: &mut [EveEvent],
    config: Option<AlertCaptureConfig>,
    (frame, link): (&[u8], u32),
    payload: &[u8],
    stream: &[u8],
) {
    // A tunnel carrier's slot keeps no bytes: nothing true to log.
    let Some(config) = config.filter(|_| !frame.is_empty()) else {
        return;
    };
    for ev in events {
        if let EveEvent::App(app) = ev {
            if let AppEventKind::Alert(alert) = &mut app.kind {
                // A stream match logs the stream bytes it inspected, as Suricata's `stream: 1`.
                let mut capture = if alert.stream {
                    AlertCapture::copy(config, frame, link, stream)
                } else {
                    AlertCapture::copy(config, frame, link, payload)
                };
                capture.stream = alert.stream;
                alert.capture = Some(Box::new(capture));
            }
        }
    }
}

/// The raw stream of `dir` for a packet's stream inspection: the bytes reassembly handed on
/// since offset `from` (where the direction stood before the packet), after up to
/// `STREAM_LOOKBACK` bytes inspected with earlier packets. `None` when the packet added nothing.
fn packet_window(
    stream: &vigil_parsers::stream::TcpReassembler,
    dir: Direction,
    from: u64,
) -> Option<StreamWindow<'_>> {
    let (base, bytes) = stream.raw(dir);
    if stream.offset(dir) <= from || bytes.is_empty() {
        return None;
    }
    let start = base.max(from.saturating_sub(STREAM_LOOKBACK));
    let cut = usize::try_from(start - base).ok()?.min(bytes.len());
    Some(StreamWindow {
        bytes: &bytes[cut..],
        base: start,
        new_from: usize::try_from(from.saturating_sub(start)).ok()?,
    })
}

/// Each direction's raw stream since its transaction began (`tx_from`), with the stream
/// offset of its first byte.
fn tx_windows<'a>(
    stream: &'a vigil_parsers::stream::TcpReassembler,
    tx_from: &[u64; 2],
) -> [Option<(u64, &'a [u8])>; 2] {
    [Direction::ToServer, Direction::ToClient].map(|d| {
        let (base, bytes) = stream.raw(d);
        let start = base.max(tx_from[usize::from(d == Direction::ToClient)]);
        let cut = usize::try_from(start - base).ok()?;
        bytes.get(cut..).map(|b| (start, b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::eve::AnomalyEvent;

    fn worker(shed: bool, events_tx: Sender<Vec<EveEvent>>) -> Worker {
        let config = crate::config::Config::default();
        Worker::new(
            WorkerConfig {
                flow: config.flow_table(1),
                anomaly_events_per_second: 100,
                app_layer: config.app_layer(),
                stream_memcap_bytes: 1 << 20,
                shed_events_when_output_full: shed,
                alert_capture: None,
            },
            None,
            events_tx,
        )
    }

    fn anomalies(n: usize) -> Vec<EveEvent> {
        let a = AnomalyEvent {
            ts_ns: 1,
            pcap_cnt: 1,
            event: "decoder.ipv4.trunc_pkt",
            l3: None,
            ports: None,
            vlans: [0; vigil_parsers::MAX_VLANS],
            vlan_count: 0,
            tunnel: vigil_parsers::TunnelContext::default(),
            file_index: 0,
        };
        (0..n).map(|_| EveEvent::Anomaly(a)).collect()
    }

    #[test]
    fn a_live_worker_sheds_events_on_a_full_output_queue_and_counts_them() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let mut w = worker(true, tx);
        w.events = anomalies(3);
        w.send_events();
        w.events = anomalies(2);
        w.send_events();
        assert_eq!(w.report.events_dropped, 2);
        assert_eq!(w.report.output_waits, 0);
        assert_eq!(rx.len(), 1);
    }

    #[test]
    fn a_replay_worker_waits_for_the_output_and_counts_the_wait() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let mut w = worker(false, tx);
        w.events = anomalies(3);
        w.send_events();
        let reader = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            let first = rx.recv().unwrap().len();
            let second = rx.recv().unwrap().len();
            (first, second)
        });
        w.events = anomalies(2);
        w.send_events();
        assert_eq!(reader.join().unwrap(), (3, 2));
        assert_eq!(w.report.events_dropped, 0);
        assert_eq!(w.report.output_waits, 1);
        assert!(w.report.output_wait_ns > 0);
    }

    #[test]
    fn spent_batches_come_back_emptied_and_their_capacity_is_reused() {
        let (tx, rx) = crossbeam_channel::bounded(4);
        let (spent_tx, spent_rx) = crossbeam_channel::bounded(4);
        let mut w = worker(false, tx);
        w.set_spent(Some(spent_rx));
        w.events = anomalies(3);
        w.send_events();
        assert_eq!(w.events.capacity(), 0, "nothing came back yet");
        // The output thread writes two batches and returns them; the larger one is reused.
        let written = rx.recv().unwrap();
        spent_tx.send(anomalies(40)).unwrap();
        spent_tx.send(written).unwrap();
        w.events = anomalies(1);
        w.send_events();
        assert!(w.events.is_empty());
        assert!(w.events.capacity() >= 40);
        assert_eq!(rx.recv().unwrap().len(), 1);
        assert!(spent_tx.is_empty(), "every spent batch was taken and freed");
    }
}
