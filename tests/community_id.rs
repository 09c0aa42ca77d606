//! Community ID v1 against the specification's own baseline: every packet of
//! `community-id/pcaps/combined.pcap.gz`, with seed 0 and seed 1.

use std::path::PathBuf;

use vigil::capture::PcapFileReader;
use vigil::flow::{community_id_v1, CommunityTuple};
use vigil_parsers::{decode, DecodedPacket, LinkType, PacketKind};

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/community-id")
}

/// (proto, src, dst, sport, dport, id) per distinct tuple, in order of first appearance: the
/// baseline lists each tuple once.
type Row = (u8, String, String, Option<(u16, u16)>, String);

fn ids_of_combined_pcap(seed: u16) -> Vec<Row> {
    let file = std::fs::File::open(corpus().join("pcaps/combined.pcap.gz")).expect("corpus pcap");
    let gz = flate2::read::GzDecoder::new(file);
    let mut reader = PcapFileReader::from_reader(gz, "combined.pcap.gz").expect("pcap header");
    let mut out = Vec::new();
    let mut pkt = DecodedPacket::default();
    while let Some(raw) = reader.next_packet().expect("readable corpus pcap") {
        decode(LinkType::from_pcap(raw.link_type), raw.data, &mut pkt);
        if pkt.kind != PacketKind::Ip {
            continue;
        }
        let tuple = CommunityTuple::from_packet(&pkt);
        let row = (
            tuple.proto,
            tuple.src.to_string(),
            tuple.dst.to_string(),
            tuple.ports,
            community_id_v1(&tuple, seed),
        );
        if !out.contains(&row) {
            out.push(row);
        }
    }
    out
}

fn baseline(name: &str) -> Vec<Row> {
    let text = std::fs::read_to_string(corpus().join("baseline").join(name)).expect("baseline");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&text).expect("baseline json");
    rows.iter()
        .map(|r| {
            (
                r["proto"].as_u64().unwrap() as u8,
                r["saddr"].as_str().unwrap().to_string(),
                r["daddr"].as_str().unwrap().to_string(),
                r["sport"]
                    .as_u64()
                    .zip(r["dport"].as_u64())
                    .map(|(s, d)| (s as u16, d as u16)),
                r["communityid"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn matches_spec_baseline_seed_0() {
    let ours = ids_of_combined_pcap(0);
    let want = baseline("baseline_deflt.json");
    assert_eq!(
        ours.len(),
        want.len(),
        "IP packets in combined.pcap: {ours:#?}"
    );
    for (i, (o, w)) in ours.iter().zip(&want).enumerate() {
        assert_eq!(o, w, "packet {i}");
    }
}

#[test]
fn matches_spec_baseline_seed_1() {
    assert_eq!(ids_of_combined_pcap(1), baseline("baseline_seed1.json"));
}
