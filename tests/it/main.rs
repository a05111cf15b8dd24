//! The integration tests as one test crate: each former `tests/<name>.rs` is a module here,
//! so the suite links dfdx, polars and the library once instead of once per file. Run one
//! module with `cargo test --test it <module>::`.

mod architecture;
mod bad_input_corpus;
mod cli;
mod cli_gmm;
mod data_batch;
mod data_cli;
mod data_digitscenes;
mod data_folder;
mod data_learnability;
mod data_synthscapes;
mod data_tune_split;
mod experiments_cli;
mod experiments_summary;
mod experiments_tiny;
mod experiments_tuning;
mod gap_factors;
mod gmm_em;
mod gmm_grad;
mod gmm_head;
mod gmm_online;
mod gmm_props;
mod gmm_sinkhorn;
mod gmm_sklearn;
mod loader_fuzz;
mod metrics_cli;
mod metrics_golden;
mod metrics_props;
mod metrics_reference;
mod plot_figures;
mod results_claims;
mod robustness_cli;
mod train_checkpoint_cli;
mod train_cli;
mod train_head_plugin;
mod train_resume;
mod train_toy;
