//! The README is the user's manual: it must document every spec key exactly as the tool
//! validates it, and every CSV column the tool writes.

use runner::record::RUN_COLUMNS;
use runner::spec::KEYS;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

/// The spec reference table, generated from the key definitions.
fn key_table() -> String {
    let mut t = String::from("| key | default | allowed | meaning |\n|---|---|---|---|\n");
    for k in KEYS {
        t.push_str(&format!(
            "| `{}` | `{}` | {} | {} |\n",
            k.key,
            k.default,
            k.kind.describe().replace('|', "\\|"),
            k.doc.replace('|', "\\|")
        ));
    }
    t
}

#[test]
fn readme_lists_every_spec_key_with_default_and_range() {
    let table = key_table();
    assert!(
        readme().contains(&table),
        "README.md's spec reference is out of date; replace it with:\n\n{table}"
    );
}

#[test]
fn readme_explains_every_csv_column() {
    let text = readme();
    let columns = RUN_COLUMNS.iter().chain(&[
        "run_id",
        "step",
        "train_loss",
        "grad_norm",
        "clipped",
        "eval_loss",
        "eval_accuracy",
        "probe_step",
        "distance",
        "log10_grad_norm",
        "index",
        "exponent",
    ]);
    for c in columns {
        assert!(
            text.contains(&format!("| `{c}` |")),
            "README.md does not explain column `{c}`"
        );
    }
}
