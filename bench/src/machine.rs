//! What the figures were measured on: cores, memory, CPU, PostgreSQL and NATS versions, load.

use serde::Serialize;

/// The machine and services of a run, recorded in every result file.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Cores the process may use (`nproc`).
    pub cores: usize,
    /// The CPU model (first `model name` of `/proc/cpuinfo`).
    pub cpu: String,
    /// Total memory in MiB.
    pub memory_mib: u64,
    /// The kernel release.
    pub kernel: String,
    /// `SHOW server_version` of the PostgreSQL server.
    pub postgres: String,
    /// `SHOW fsync`, `synchronous_commit`, `shared_buffers`, `max_connections`.
    pub postgres_settings: serde_json::Value,
    /// The NATS server's version, from its INFO.
    pub nats: String,
}

impl Machine {
    /// Gathers the facts; a fact that cannot be read is `"unknown"`.
    pub async fn gather(postgres: &sqlx::PgPool, nats_url: &str) -> Machine {
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|line| line.starts_with("model name"))
                    .and_then(|line| line.split_once(':'))
                    .map(|(_, model)| model.trim().to_owned())
            })
            .unwrap_or_else(unknown);
        let memory_mib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|info| kib_field(&info, "MemTotal:"))
            .map_or(0, |kib| kib / 1024);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|release| release.trim().to_owned())
            .unwrap_or_else(|_| unknown());
        let show = |name: &'static str| async move {
            sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!("SHOW {name}")))
                .fetch_one(postgres)
                .await
                .unwrap_or_else(|_| unknown())
        };
        let postgres_version = show("server_version").await;
        let mut settings = serde_json::Map::new();
        for name in [
            "fsync",
            "synchronous_commit",
            "wal_sync_method",
            "shared_buffers",
            "max_connections",
        ] {
            settings.insert(name.to_owned(), show(name).await.into());
        }
        let nats = match async_nats::connect(nats_url).await {
            Ok(client) => client.server_info().version,
            Err(_) => unknown(),
        };
        Machine {
            cores,
            cpu,
            memory_mib,
            kernel,
            postgres: postgres_version,
            postgres_settings: settings.into(),
            nats,
        }
    }

    /// One line for a terminal.
    pub fn line(&self) -> String {
        format!(
            "{} cores ({}), {} MiB, PostgreSQL {} (fsync {}), NATS {}",
            self.cores,
            self.cpu,
            self.memory_mib,
            self.postgres,
            self.postgres_settings["fsync"].as_str().unwrap_or("?"),
            self.nats
        )
    }
}

fn unknown() -> String {
    "unknown".to_owned()
}

/// The load average (1, 5, 15 minutes) now: noise from other work on the machine shows here.
pub fn load_average() -> Vec<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .filter_map(|field| field.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A `kB` field of a `/proc` file (`VmRSS:   1234 kB`), in KiB.
pub fn kib_field(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find(|line| line.starts_with(field))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|value| value.parse().ok())
}

/// Resident memory of a process, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Memory {
    /// `VmRSS`: resident now, MiB.
    pub rss_mib: f64,
    /// `VmHWM`: the most it was ever resident, MiB.
    pub peak_rss_mib: f64,
}

/// Reads `pid`'s memory; `None` when the process is gone or not on this machine.
pub fn memory_of(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(Memory {
        rss_mib: kib_field(&status, "VmRSS:")? as f64 / 1024.0,
        peak_rss_mib: kib_field(&status, "VmHWM:")? as f64 / 1024.0,
    })
}

/// CPU time (user + system) a process has used, in seconds, from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    // utime and stime: fields 14 and 15 of the man page.
    stat_seconds(pid, 14)
}

/// CPU time (user + system) of the children `pid` has waited for, in seconds: where the time
/// of an exited child goes, e.g. a PostgreSQL backend whose connection closed, reaped by the
/// postmaster.
pub fn reaped_children_cpu_seconds(pid: u32) -> Option<f64> {
    // cutime and cstime: fields 16 and 17 of the man page.
    stat_seconds(pid, 16)
}

/// The sum of the clock-tick fields `field` and `field + 1` (numbered as in `proc(5)`) of
/// `/proc/<pid>/stat`, in seconds.
fn stat_seconds(pid: u32, field: usize) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields are counted after its closing parenthesis,
    // where the state is field 3 of the man page.
    let (_, after) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let first: f64 = fields.get(field - 3)?.parse().ok()?;
    let second: f64 = fields.get(field - 2)?.parse().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some((first + second) / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kib_fields() {
        let status = "Name:\tkeryu\nVmHWM:\t   51200 kB\nVmRSS:\t   20480 kB\n";
        assert_eq!(kib_field(status, "VmHWM:"), Some(51_200));
        assert_eq!(kib_field(status, "VmRSS:"), Some(20_480));
        assert_eq!(kib_field(status, "VmSwap:"), None);
    }

    #[test]
    fn reads_its_own_memory_and_cpu() {
        let memory = memory_of(std::process::id()).expect("own status");
        assert!(memory.peak_rss_mib >= memory.rss_mib);
        assert!(cpu_seconds(std::process::id()).is_some());
        assert!(reaped_children_cpu_seconds(std::process::id()).is_some());
    }

    /// A child's time moves to its parent's reaped-children time once it is waited for.
    #[test]
    fn a_reaped_child_counts_for_its_parent() {
        let own = std::process::id();
        let before = reaped_children_cpu_seconds(own).expect("own stat");
        let status = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done"])
            .status()
            .expect("a busy child");
        assert!(status.success());
        let after = reaped_children_cpu_seconds(own).expect("own stat");
        assert!(after > before, "{before} -> {after}");
    }
}
