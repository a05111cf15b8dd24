//! Models in parallel on one machine (`gmmseg ablate --jobs N`): the models a study still
//! needs are trained N at a time, each in its own rayon pool of `threads / N` threads, and
//! written to the model cache as they finish; the runner's sequential loop then reads them
//! back and writes exactly the rows a one-job run writes, in the same order.
//!
//! Why independent models rather than more threads per model: the networks' tensors are
//! small (a 64×64 image, 32 channels), so one model's step parallelises poorly over two
//! cores, while two models share nothing. `benches/jobs.rs` measures the gain (models per
//! hour, `--jobs 2` over `--jobs 1`, on the quick profile; README records it).
//!
//! Not a source of different numbers: every kernel of a model reduces in an order fixed by
//! its data, never by its thread count (the GEMMs split output tiles, not sums; the
//! streaming accumulators use fixed chunks), so a model trained in a one-thread pool equals
//! the one trained on all threads — `tests/it/experiments_cli.rs` compares a `--jobs 2` run's
//! rows with a one-job run's. This file is therefore left out of the code fingerprint.
//!
//! Timings are the exception: a model trained beside others measures its step time and
//! throughput under contention. The models whose timings the `runtime` study reports are
//! therefore always trained alone, after the parallel ones.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use super::runner::PlannedRun;
use super::{model, model_key, specs_for, ExperimentRunner, RunProgress, Study};
use crate::error::{GmmSegError, Result};
use crate::train::config::TrainConfig;

/// The number of models to train at once when the user does not say: one per thread of the
/// global rayon pool (the cores, or `RAYON_NUM_THREADS`), each model in a one-thread pool.
/// Measured on two cores (`benches/jobs.rs`, README): two one-thread models train more
/// models per hour than one two-thread model.
pub fn default_jobs() -> usize {
    rayon::current_num_threads().max(1)
}

impl ExperimentRunner {
    /// Trains up to `jobs` models at once (default 1: one model at a time on every thread).
    /// The rows written are the same for any `jobs`; only the wall time changes.
    ///
    /// # Errors
    /// [`GmmSegError::InvalidInput`] naming `jobs` for 0.
    pub fn with_jobs(mut self, jobs: usize) -> Result<Self> {
        if jobs == 0 {
            return Err(GmmSegError::input("jobs", "must be ≥ 1, got 0"));
        }
        self.jobs = jobs;
        Ok(self)
    }

    /// How many models this runner trains at once.
    pub fn jobs(&self) -> usize {
        self.jobs
    }

    /// Trains, `jobs` at a time, the models that the runs of `runs` not cached need and that
    /// are neither in memory nor on disk, except those the runtime study times. Returns, per
    /// run, whether its progress event was already sent (its model finished here).
    pub(super) fn train_ahead(
        &mut self,
        study: Study,
        runs: &[PlannedRun<'_>],
    ) -> Result<Vec<bool>> {
        let mut reported = vec![false; runs.len()];
        if self.jobs <= 1 || self.cache_only || study == Study::Runtime {
            return Ok(reported);
        }
        let eval = self.profile.eval_settings();
        let timed = self.runtime_model_keys()?;
        let run_keys: Vec<Option<String>> = runs
            .iter()
            .map(|r| (!r.hit).then(|| model_key(&self.code, &r.train, &eval, &self.dataset)))
            .collect();
        let mut todo: Vec<(String, TrainConfig)> = Vec::new();
        let mut seen = HashSet::new();
        for (run, key) in runs.iter().zip(&run_keys) {
            let Some(key) = key else { continue };
            if timed.contains(key) || !seen.insert(key.clone()) {
                continue;
            }
            if self.cached_record(key)?.is_none() {
                todo.push((key.clone(), run.train.clone()));
            }
        }
        if todo.len() < 2 {
            return Ok(reported);
        }
        todo.sort_by_key(|(_, train)| std::cmp::Reverse(cost_rank(train)));
        self.splits()?;
        let data = self.data.take().expect("splits were just opened");
        let outcome = self.train_all(&data, &todo, &mut |runner, key| {
            for (i, run) in runs.iter().enumerate() {
                if run_keys[i].as_deref() == Some(key) {
                    reported[i] = true;
                    if let Some(p) = runner.progress.as_mut() {
                        p(&RunProgress {
                            study,
                            spec: &run.spec.name,
                            seed: run.seed,
                            cached: false,
                        });
                    }
                }
            }
        });
        self.data = Some(data);
        outcome.map(|()| reported)
    }

    /// How many of the models whose timings the runtime study reports this runner has
    /// trained so far: they may be trained by whichever study needs them first, so
    /// `ablate` checks the machine's load around any study that trained one.
    ///
    /// # Errors
    /// When the runtime study's configurations cannot be built for this dataset.
    pub fn timed_models_trained(&self) -> Result<usize> {
        let timed = self.runtime_model_keys()?;
        Ok(self.fresh.iter().filter(|k| timed.contains(*k)).count())
    }

    /// The model keys of every run of the runtime study of this runner's seeds (any shard).
    fn runtime_model_keys(&self) -> Result<HashSet<String>> {
        let eval = self.profile.eval_settings();
        let specs = specs_for(Study::Runtime, &self.profile, &self.dataset)?;
        let mut keys = HashSet::new();
        for &seed in &self.seeds {
            for spec in &specs {
                let train = spec.train_config(&self.profile, &self.dataset, seed)?;
                keys.insert(model_key(&self.code, &train, &eval, &self.dataset));
            }
        }
        Ok(keys)
    }

    /// Trains every model of `todo` with `self.jobs` workers, keeping each record as it
    /// arrives (cache file, memory) and calling `done(self, key)`. On an error no new model
    /// starts; the running ones finish and are kept; the error of the earliest model in
    /// `todo` that failed is returned.
    fn train_all(
        &mut self,
        data: &model::Splits,
        todo: &[(String, TrainConfig)],
        done: &mut dyn FnMut(&mut ExperimentRunner, &str),
    ) -> Result<()> {
        let profile = self.profile.clone();
        let eval = self.profile.eval_settings();
        let train = |(key, train): &(String, TrainConfig)| {
            model::train_and_evaluate(&profile, data, train, &eval, key)
        };
        let jobs = self.jobs;
        in_parallel(todo, jobs, &train, &mut |record| {
            let r = self.keep_trained(record)?;
            done(self, &r.key);
            Ok(())
        })
    }
}

/// The order in which a study's models start: the most expensive first (longest processing
/// time first), so that the models still running when the queue empties are short ones and
/// fewer threads idle at the end of a study. Ranked by steps, then by the mixture's work per
/// update (components × EM loops); ties keep the study's order (the sort is stable). The
/// order changes when a model trains, never what it computes.
fn cost_rank(train: &TrainConfig) -> (usize, usize) {
    let mixture = train.head.gmm().map_or(0, |g| {
        g.online.gmm.components * g.online.gmm.em_loops.max(1)
    });
    (train.steps, mixture)
}

/// Runs `work` on every item of `todo` with `jobs` workers, each in a rayon pool of
/// `threads / jobs` threads, handing every result to `keep` on the calling thread as it
/// arrives. After an error (of `work` or of `keep`) no new item starts, the running ones
/// finish, and the error of the earliest failed item in `todo` is returned. The models of
/// `ablate --jobs` and the trials of `ablate tuning` both go through it.
pub(crate) fn in_parallel<I: Sync, R: Send>(
    todo: &[I],
    jobs: usize,
    work: &(dyn Fn(&I) -> Result<R> + Sync),
    keep: &mut dyn FnMut(R) -> Result<()>,
) -> Result<()> {
    let jobs = jobs.min(todo.len()).max(1);
    let threads = (rayon::current_num_threads() / jobs).max(1);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<(usize, Result<R>)>();
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let tx = tx.clone();
            let (next, stop) = (&next, &stop);
            scope.spawn(move || {
                let pool = match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
                    Ok(pool) => pool,
                    Err(e) => {
                        let detail = format!("could not start a pool of {threads} threads: {e}");
                        let _ = tx.send((0, Err(GmmSegError::Device { detail })));
                        return;
                    }
                };
                while !stop.load(Ordering::SeqCst) {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(item) = todo.get(i) else { break };
                    if tx.send((i, pool.install(|| work(item)))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut failed: Option<(usize, GmmSegError)> = None;
        for (i, result) in rx {
            if let Err(e) = result.and_then(&mut *keep) {
                stop.store(true, Ordering::SeqCst);
                if failed.as_ref().is_none_or(|(j, _)| i < *j) {
                    failed = Some((i, e));
                }
            }
        }
        failed.map_or(Ok(()), |(_, e)| Err(e))
    })
}
