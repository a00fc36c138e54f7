//! Measures the loader and the emitter on a YAML file: `cargo run --release --example throughput FILE`.
use std::time::Instant;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let path = std::env::args().nth(1).expect("usage: throughput FILE");
    let text = std::fs::read_to_string(&path).expect("read");
    let mb = text.len() as f64 / 1e6;
    let t = Instant::now();
    let docs = sluice_manifest::parse_documents(&text, &sluice_manifest::YamlLimits::default())
        .expect("parse");
    let load = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut events = 0usize;
    let mut parser = saphyr_parser::Parser::new_from_str(&text);
    while let Some(e) = parser.next_event() {
        e.expect("event");
        events += 1;
    }
    let scan = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut out = String::new();
    sluice_manifest::write_yaml_stream(&docs, &mut out);
    let emit = t.elapsed().as_secs_f64();
    let t = Instant::now();
    drop(docs);
    let free = t.elapsed().as_secs_f64();
    println!("{mb:.1} MB, {events} events");
    println!("saphyr events only: {:.3}s {:.0} MB/s", scan, mb / scan);
    println!("load to values:     {:.3}s {:.0} MB/s", load, mb / load);
    println!("emit:               {:.3}s {:.0} MB/s", emit, mb / emit);
    println!("free:               {:.3}s", free);
}
