//! Codec throughput: decoding and encoding typical `vw` frames, one at a time and as a pipelined
//! buffer of many frames. Reported both as frames/s (Elements) and bytes/s (Bytes).
//!
//! Run: `cargo bench -p pinhouse-protocol --bench codec` (add `-- --quick` for a short run).

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use pinhouse_protocol::body::Hardware;
use pinhouse_protocol::client::Client;
use pinhouse_protocol::{Codec, Frame, command, encode_fields};

const FRAMES: usize = 1_000;

/// A pipelined buffer of `FRAMES` typical device writes: `vw\0<pin>\0<value>` with pins 0–15 and
/// values like `23.5`, `1024`, `-3.25`.
fn pipelined_vw() -> BytesMut {
    let mut client = Client::new(&b"0123456789abcdef0123456789abcdef"[..]);
    let mut buf = BytesMut::new();
    let values: [&[u8]; 4] = [b"23.5", b"1024", b"-3.25", b"0.0012345"];
    for i in 0..FRAMES {
        client.virtual_write((i % 16) as u8, &[values[i % values.len()]], &mut buf);
    }
    buf
}

fn decode_all(codec: &Codec, buf: &mut BytesMut) -> usize {
    let mut n = 0;
    while let Some(frame) = codec.decode(buf).unwrap() {
        black_box(&frame);
        n += 1;
    }
    n
}

fn decode_and_parse_all(codec: &Codec, buf: &mut BytesMut) -> usize {
    let mut n = 0;
    while let Some(frame) = codec.decode(buf).unwrap() {
        if let Frame::Message {
            command: command::HARDWARE,
            body,
            ..
        } = &frame
            && let Ok(Hardware::VirtualWrite { pin, values }) = Hardware::parse(body)
        {
            black_box((pin, values));
            n += 1;
        }
    }
    n
}

fn encode_all(buf: &mut BytesMut) {
    let values: [&[u8]; 4] = [b"23.5", b"1024", b"-3.25", b"0.0012345"];
    for i in 0..FRAMES {
        let pin = (i % 16) as u8;
        Hardware::VirtualWrite {
            pin,
            values: values[i % values.len()],
        }
        .encode_frame(1 + i as u16, buf);
    }
}

fn benches(c: &mut Criterion) {
    let codec = Codec::default();
    let wire = pipelined_vw();
    let wire_len = wire.len() as u64;

    for (group_name, throughput) in [
        ("frames", Throughput::Elements(FRAMES as u64)),
        ("bytes", Throughput::Bytes(wire_len)),
    ] {
        let mut g = c.benchmark_group(group_name);
        g.throughput(throughput);
        g.bench_function("decode_pipelined_vw", |b| {
            b.iter_batched_ref(
                || wire.clone(),
                |buf| assert_eq!(decode_all(&codec, buf), FRAMES),
                BatchSize::SmallInput,
            )
        });
        g.bench_function("decode_and_parse_pipelined_vw", |b| {
            b.iter_batched_ref(
                || wire.clone(),
                |buf| assert_eq!(decode_and_parse_all(&codec, buf), FRAMES),
                BatchSize::SmallInput,
            )
        });
        let mut out = BytesMut::with_capacity(wire.len());
        g.bench_function("encode_vw", |b| {
            b.iter(|| {
                out.clear();
                encode_all(&mut out);
                black_box(out.len())
            })
        });
        g.bench_function("encode_fields_vw", |b| {
            b.iter(|| {
                out.clear();
                for i in 0..FRAMES {
                    encode_fields(
                        command::HARDWARE,
                        1 + i as u16,
                        &[b"vw", b"7", b"23.5"],
                        &mut out,
                    );
                }
                black_box(out.len())
            })
        });
        g.finish();
    }

    // One frame at a time, as a session sees it when each read returns a single write.
    let mut single = BytesMut::new();
    encode_fields(command::HARDWARE, 3, &[b"vw", b"1", b"23.5"], &mut single);
    let mut g = c.benchmark_group("single");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_and_parse_vw", |b| {
        b.iter_batched_ref(
            || single.clone(),
            |buf| assert_eq!(decode_and_parse_all(&codec, buf), 1),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(codec_benches, benches);
criterion_main!(codec_benches);
