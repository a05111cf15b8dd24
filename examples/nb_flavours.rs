//! The preset cell of `notebooks/07-paper-vs-reference-code` (the study's own cells come
//! from `nb_study.rs`): both flavours' head configurations side by side.
//! `scripts/make_notebooks.py` copies the region between `// cell: NAME` and `// end cell`.
//!
//! Run: `cargo run --example nb_flavours`.

fn main() {
    // cell: presets
    use gmmseg::nn::head::GmmHeadConfig;
    {
        let (classes, m, d) = (8, 5, 32);
        println!(
            "paper flavour:\n{:#?}\n",
            GmmHeadConfig::paper(m).bind(classes, d)
        );
        println!(
            "reference-code flavour:\n{:#?}",
            GmmHeadConfig::reference_code(m).bind(classes, d)
        );
    }
    // end cell
}
