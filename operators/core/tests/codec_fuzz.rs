//! Hostile bytes through the message codecs, in-process: 10,000 mutated
//! JSON and 10,000 mutated Arrow IPC messages (byte flips, truncations,
//! length fields inflated, splices; for JSON also deep nesting, huge
//! numbers, invalid UTF-8 and giant strings), from a fixed seed. A panic
//! escaping `MessageScorer::score` fails the test; an abort (an allocation
//! of terabytes, say) kills it. Every message must be scored or refused
//! with a reason, and a valid message in each batch is scored whatever its
//! neighbours are. The corpus (`tests/corpus/`) keeps valid seeds and the
//! messages that made the codecs panic or abort before they were hardened.

mod fuzz;

use fuzz::{corpus, format_of, ipc_seeds, json_seeds, mutate, scorer, Rng};

const MESSAGES: usize = 10_000;
const BATCH: usize = 50;

/// What happened to the messages of one run.
#[derive(Debug, Default, PartialEq)]
struct Tally {
    scored: usize,
    refused: usize,
    /// Refusals that came from a panic caught inside the reader.
    caught_panics: usize,
}

/// Score `values` plus one valid message at the end; check every message got
/// an output or a reason, the valid one an output; count the others.
fn score_batch(
    s: &streamml_core::codec::MessageScorer,
    values: &[Vec<u8>],
    valid: &[u8],
    tally: &mut Tally,
) {
    let mut refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    refs.push(valid);
    let out = s.score(&refs);
    assert_eq!(out.outputs.len(), refs.len());
    let mut reasons = vec![None; refs.len()];
    for e in &out.errors {
        assert!(
            reasons[e.index].is_none(),
            "message {} refused twice",
            e.index
        );
        assert!(
            !e.reason.is_empty(),
            "message {} refused without a reason",
            e.index
        );
        reasons[e.index] = Some(e.reason.as_str());
    }
    for (i, (output, reason)) in out.outputs.iter().zip(&reasons).enumerate() {
        assert!(
            output.is_some() != reason.is_some(),
            "message {i} ({:?}) has output {} and reason {reason:?}",
            String::from_utf8_lossy(&refs[i][..refs[i].len().min(200)]),
            output.is_some()
        );
        if i == values.len() {
            assert!(
                output.is_some(),
                "the valid message was refused: {reason:?}"
            );
            continue;
        }
        match reason {
            None => tally.scored += 1,
            Some(r) => {
                tally.refused += 1;
                tally.caught_panics += usize::from(r.contains("the reader failed"));
            }
        }
    }
}

fn run(json: bool, seed: u64) -> Tally {
    let scorer = scorer(format_of(json));
    let seeds = if json { json_seeds() } else { ipc_seeds() };
    let mut rng = Rng::new(seed);
    let mut tally = Tally::default();
    let mut batch = Vec::with_capacity(BATCH);
    for _ in 0..MESSAGES {
        let from = &seeds[rng.below(seeds.len())];
        batch.push(mutate(&mut rng, from, &seeds, json));
        if batch.len() == BATCH {
            score_batch(&scorer, &batch, &seeds[0], &mut tally);
            batch.clear();
        }
    }
    if !batch.is_empty() {
        score_batch(&scorer, &batch, &seeds[0], &mut tally);
    }
    assert_eq!(tally.scored + tally.refused, MESSAGES);
    eprintln!("{} messages: {tally:?}", if json { "json" } else { "ipc" });
    tally
}

#[test]
fn mutated_json_messages_are_scored_or_refused() {
    let tally = run(true, 0x5eed_0001);
    assert!(
        tally.refused > MESSAGES / 2,
        "{tally:?}: the mutations should break most messages"
    );
    assert!(tally.scored > 0, "{tally:?}");
    assert_eq!(
        tally.caught_panics, 0,
        "{tally:?}: a reader panicked (caught, but a bug)"
    );
}

#[test]
fn mutated_ipc_messages_are_scored_or_refused() {
    let tally = run(false, 0x5eed_0002);
    assert!(
        tally.refused > MESSAGES / 2,
        "{tally:?}: the mutations should break most messages"
    );
    assert!(tally.scored > 0, "{tally:?}");
}

/// The saved corpus: `valid-*` is scored; `crash-*` (it made the old
/// codec panic or abort) and `hostile-*` (deep nesting, huge numbers, bad
/// UTF-8, giant strings) are refused with a reason, alone or among the
/// valid ones.
fn check_corpus(kind: &str, json: bool) {
    let scorer = scorer(format_of(json));
    let files = corpus(kind);
    assert!(
        files.iter().any(|(n, _)| n.starts_with("valid-")),
        "no valid {kind} seeds"
    );
    assert!(
        files.iter().any(|(n, _)| !n.starts_with("valid-")),
        "no hostile {kind} messages"
    );
    let values: Vec<&[u8]> = files.iter().map(|(_, v)| v.as_slice()).collect();
    let together = scorer.score(&values);
    for (i, (name, value)) in files.iter().enumerate() {
        let alone = scorer.score(&[value]);
        let reason = together
            .errors
            .iter()
            .find(|e| e.index == i)
            .map(|e| e.reason.clone());
        assert_eq!(
            alone.errors.first().map(|e| e.reason.clone()),
            reason,
            "{kind}/{name}"
        );
        if name.starts_with("valid-") {
            assert!(
                together.outputs[i].is_some(),
                "{kind}/{name} refused: {reason:?}"
            );
        } else {
            let reason = reason.unwrap_or_else(|| panic!("{kind}/{name} was scored"));
            assert!(!reason.is_empty(), "{kind}/{name}");
            eprintln!("{kind}/{name}: {}", &reason[..reason.len().min(160)]);
        }
    }
}

#[test]
fn the_json_corpus() {
    check_corpus("json", true);
}

#[test]
fn the_ipc_corpus() {
    check_corpus("ipc", false);
}

/// `STREAMML_WRITE_SEEDS=1`: write the valid seeds into the corpus (once, by hand).
#[test]
fn the_seeds_are_in_the_corpus() {
    for (kind, seeds) in [("json", json_seeds()), ("ipc", ipc_seeds())] {
        for (i, seed) in seeds.iter().enumerate() {
            let path = fuzz::corpus_dir(kind).join(format!("valid-{i}"));
            if std::env::var_os("STREAMML_WRITE_SEEDS").is_some() {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, seed).unwrap();
            }
            assert_eq!(
                &std::fs::read(&path).expect("a seed file"),
                seed,
                "{}",
                path.display()
            );
        }
    }
}
