//! A worker: owns a flow table and turns its packets into flow and anomaly events.

use crossbeam_channel::{Receiver, Sender};

use super::batch::{Batch, Slot, SlotKind};
use crate::flow::{FlowKey, FlowRecord, FlowStats, FlowTable, FlowTableConfig};
use crate::output::eve::{AnomalyEvent, EveEvent};

#[derive(Debug, Clone, Copy)]
pub struct WorkerConfig {
    pub flow: FlowTableConfig,
    /// Most anomaly events one worker writes per second of packet time; the rest are counted.
    pub anomaly_events_per_second: u32,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct WorkerReport {
    pub flow: FlowStats,
    pub packets: u64,
    pub anomaly_events: u64,
    pub anomalies_suppressed: u64,
    pub flow_events: u64,
}

pub struct Worker {
    table: FlowTable,
    ended: Vec<FlowRecord>,
    events: Vec<EveEvent>,
    events_tx: Sender<Vec<EveEvent>>,
    recycle_tx: Sender<Batch>,
    anomaly_budget: u32,
    anomaly_second: u64,
    anomaly_limit: u32,
    report: WorkerReport,
}

impl Worker {
    pub fn new(
        config: WorkerConfig,
        events_tx: Sender<Vec<EveEvent>>,
        recycle_tx: Sender<Batch>,
    ) -> Worker {
        Worker {
            table: FlowTable::new(config.flow),
            ended: Vec::with_capacity(1024),
            events: Vec::new(),
            events_tx,
            recycle_tx,
            anomaly_budget: config.anomaly_events_per_second,
            anomaly_second: 0,
            anomaly_limit: config.anomaly_events_per_second,
            report: WorkerReport::default(),
        }
    }

    /// Processes batches until the ring closes, then ends every flow and reports.
    pub fn run(mut self, rx: Receiver<Batch>) -> WorkerReport {
        for batch in rx {
            for slot in &batch.slots {
                self.process(slot);
            }
            self.emit_ended();
            self.send_events();
            // The reader may have stopped taking batches back; that only costs an allocation.
            let _ = self.recycle_tx.try_send(batch);
        }
        self.table.flush_all(&mut self.ended);
        self.emit_ended();
        self.send_events();
        self.report.flow = self.table.stats();
        self.report
    }

    fn process(&mut self, slot: &Slot) {
        match slot.kind {
            SlotKind::Tick => self.table.expire(slot.ts_ns, &mut self.ended),
            SlotKind::Packet => {
                self.report.packets += 1;
                if let Some((key, side)) = FlowKey::from_packet(&slot.decoded) {
                    self.table.update(
                        slot.ts_ns,
                        &key,
                        side,
                        &slot.decoded,
                        slot.wire_bytes,
                        &mut self.ended,
                    );
                }
                self.emit_anomalies(slot);
            }
            SlotKind::AnomalyOnly => self.emit_anomalies(slot),
        }
    }

    fn emit_anomalies(&mut self, slot: &Slot) {
        let pkt = &slot.decoded;
        if pkt.anomaly_count == 0 {
            return;
        }
        let second = slot.ts_ns / 1_000_000_000;
        if second != self.anomaly_second {
            self.anomaly_second = second;
            self.anomaly_budget = self.anomaly_limit;
        }
        let l3 = (pkt.kind == vigil_parsers::PacketKind::Ip).then_some((
            pkt.l3.src,
            pkt.l3.dst,
            pkt.l3.proto,
        ));
        for a in pkt.anomalies() {
            if self.anomaly_budget == 0 {
                self.report.anomalies_suppressed += 1;
                continue;
            }
            self.anomaly_budget -= 1;
            self.report.anomaly_events += 1;
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

    fn emit_ended(&mut self) {
        self.report.flow_events += self.ended.len() as u64;
        self.events.extend(self.ended.drain(..).map(EveEvent::Flow));
    }

    /// Hands this batch's events to the output thread in one message.
    fn send_events(&mut self) {
        if self.events.is_empty() {
            return;
        }
        let events = std::mem::take(&mut self.events);
        // The output thread only goes away when the run is being torn down after an error.
        let _ = self.events_tx.send(events);
    }
}
