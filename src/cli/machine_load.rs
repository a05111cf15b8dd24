//! How much of the machine other processes used while `ablate` trained the models whose
//! timings the runtime study reports.
//!
//! The runtime study's rows are wall-clock measurements: a build, a test suite or another
//! training beside it slows one model more than another and moves the paired throughput
//! ratio (a retiming beside a build moved the full SynthScapes claim from −0.008 ± 0.011 to
//! −0.012 ± 0.005, 7 December). The rows cannot tell, so the command checks: it reads the
//! machine's and its own CPU time from `/proc` before and after each study that trained
//! such a model (the runtime study's own, or `main_results`, which shares them) and warns
//! when other processes took more than [`BUSY_SHARE`] of the cores meanwhile. Only Linux has
//! `/proc`; elsewhere nothing is checked.

use std::time::Instant;

/// Share of the machine's CPU time that other processes may take while the runtime study
/// times its models before `ablate` warns: daemons and the terminal stay well below it, a
/// compiler or a second training on one of two cores is 0.5.
pub const BUSY_SHARE: f64 = 0.1;

/// Clock ticks per second of `/proc`'s CPU counters (`USER_HZ`, 100 on every Linux
/// architecture this crate builds for).
const TICKS_PER_S: f64 = 100.0;

/// CPU time of the whole machine (busy ticks, every core) and of this process, at one instant.
#[derive(Clone, Copy, Debug)]
pub struct CpuSample {
    machine_busy: u64,
    own: u64,
    cores: usize,
    at: Instant,
}

impl CpuSample {
    /// Reads `/proc/stat` and `/proc/self/stat`; `None` where they do not exist or do not
    /// parse (not Linux).
    pub fn now() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let own = std::fs::read_to_string("/proc/self/stat").ok()?;
        Some(CpuSample {
            machine_busy: machine_busy_ticks(&stat)?,
            own: own_ticks(&own)?,
            cores: cores_counted(&stat),
            at: Instant::now(),
        })
    }

    /// Share of the machine's time since `self` that processes other than this one used.
    pub fn others_share_until(&self, later: &CpuSample) -> f64 {
        let wall = later.at.duration_since(self.at).as_secs_f64();
        others_share(
            later.machine_busy.saturating_sub(self.machine_busy),
            later.own.saturating_sub(self.own),
            wall,
            later.cores,
        )
    }
}

/// Busy ticks of all cores from `/proc/stat`'s first line: user, nice, system, irq,
/// softirq and steal (time the hypervisor gave to another machine is not ours either);
/// idle and iowait are not busy.
fn machine_busy_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().next()?;
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let v: Vec<u64> = fields.map(|f| f.parse().ok()).collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal
    if v.len() < 8 {
        return None;
    }
    Some(v[0] + v[1] + v[2] + v[5] + v[6] + v[7])
}

/// The cores whose ticks the first line of `/proc/stat` sums: its `cpuN` lines (the
/// machine's, which a container's CPU quota does not change).
fn cores_counted(stat: &str) -> usize {
    stat.lines()
        .filter(|l| {
            l.strip_prefix("cpu")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count()
}

/// This process's user + system ticks, fields 14 and 15 of `/proc/self/stat` (counted
/// after the parenthesised command name, which may itself hold spaces).
fn own_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // after the name: state is field 3, so utime (14) and stime (15) are at 11 and 12
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Others' share of `cores × wall` seconds, given the machine's and this process's busy
/// ticks over the same interval; 0 for an empty interval.
fn others_share(machine_ticks: u64, own_ticks: u64, wall_s: f64, cores: usize) -> f64 {
    let capacity = wall_s * cores.max(1) as f64 * TICKS_PER_S;
    if capacity <= 0.0 {
        return 0.0;
    }
    (machine_ticks.saturating_sub(own_ticks) as f64 / capacity).clamp(0.0, 1.0)
}

/// The warning `ablate` prints when `study` trained (and so timed) models of the runtime
/// study on a busy machine, or `None` when the machine was quiet.
pub fn busy_warning(study: impl std::fmt::Display, share: f64) -> Option<String> {
    (share > BUSY_SHARE).then(|| {
        format!(
            "warning: other processes used {:.0}% of the CPU while {study} trained models whose timings the runtime study reports; those rows measure a shared machine (rerun `ablate runtime --force` when nothing else runs)",
            share * 100.0
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_ticks_count_everything_but_idle_and_iowait() {
        let stat = "cpu  100 20 30 5000 40 6 7 8 0 0\ncpu0 50 10 15 2500 20 3 3 4 0 0\n";
        assert_eq!(machine_busy_ticks(stat), Some(100 + 20 + 30 + 6 + 7 + 8));
        assert_eq!(machine_busy_ticks("cpu0 1 2 3\n"), None);
        assert_eq!(machine_busy_ticks("cpu 1 2 x 4 5 6 7 8\n"), None);
        assert_eq!(machine_busy_ticks(""), None);
        assert_eq!(cores_counted(stat), 1);
        assert_eq!(cores_counted("cpu 1\ncpu0 1\ncpu1 1\nintr 5\n"), 2);
    }

    #[test]
    fn own_ticks_survive_a_command_name_with_spaces_and_parentheses() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
        // utime stime ...
        let stat = "4242 (gmm seg (x)) R 1 2 3 4 5 6 7 8 9 10 1234 56 0 0 20 0 3";
        assert_eq!(own_ticks(stat), Some(1234 + 56));
        assert_eq!(own_ticks("4242 (gmmseg) R 1 2"), None);
    }

    #[test]
    fn share_is_the_others_ticks_over_the_cores_time() {
        // 10 s on 2 cores = 2,000 ticks; the machine was busy 1,500, this process 1,100
        assert!((others_share(1_500, 1_100, 10.0, 2) - 0.2).abs() < 1e-12);
        assert_eq!(others_share(1_000, 1_000, 10.0, 2), 0.0);
        assert_eq!(others_share(5, 0, 0.0, 2), 0.0);
        assert_eq!(others_share(9_000, 0, 10.0, 2), 1.0);
        assert!(busy_warning("runtime", 0.2).is_some_and(|w| w.contains("20%")));
        assert!(busy_warning("runtime", 0.05).is_none());
    }

    #[test]
    fn this_machine_reads_when_it_has_proc() {
        if std::path::Path::new("/proc/stat").exists() {
            let a = CpuSample::now().expect("/proc parses");
            let b = CpuSample::now().expect("/proc parses");
            assert!(a.cores >= 1);
            let share = a.others_share_until(&b);
            assert!((0.0..=1.0).contains(&share));
        }
    }
}
