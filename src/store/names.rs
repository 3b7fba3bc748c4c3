//! Random run names ("brave-otter-417") for runs created without one, as
//! MLflow does; only the shape matters, the words are our own.

use rand::seq::SliceRandom;
use rand::Rng;

const ADJECTIVES: &[&str] = &[
    "amber", "bold", "brave", "bright", "calm", "clever", "crisp", "daring", "eager", "fast",
    "fierce", "gentle", "golden", "grand", "happy", "keen", "kind", "lively", "lucky", "merry",
    "mighty", "nimble", "noble", "polite", "proud", "quick", "quiet", "rapid", "silent", "sleek",
    "smooth", "steady", "sunny", "swift", "tidy", "upbeat", "vivid", "warm", "wise", "zesty",
];

const NOUNS: &[&str] = &[
    "badger", "bear", "beaver", "crane", "crow", "deer", "dolphin", "eagle", "falcon", "ferret",
    "finch", "fox", "gecko", "hare", "hawk", "heron", "ibis", "jay", "koala", "lark", "lemur",
    "lynx", "mink", "moose", "newt", "otter", "owl", "panda", "puffin", "quail", "raven", "robin",
    "seal", "shrew", "sparrow", "stork", "swan", "tiger", "wolf", "wren",
];

pub fn random_run_name() -> String {
    let mut rng = rand::thread_rng();
    format!(
        "{}-{}-{}",
        ADJECTIVES.choose(&mut rng).unwrap_or(&"quick"),
        NOUNS.choose(&mut rng).unwrap_or(&"fox"),
        rng.gen_range(0..1000)
    )
}
