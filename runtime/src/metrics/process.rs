//! Process metrics from `/proc/self` (Linux), as Prometheus's own clients name them:
//! `prometheus-client` has no process collector, so the few files are read here.

use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// `USER_HZ`: the unit of the times in `/proc/<pid>/stat`, 100 on every Linux ABI.
const CLOCK_TICKS: f64 = 100.0;

/// What could be read of the process.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Process {
    pub(super) cpu_seconds: Option<f64>,
    pub(super) start_time_seconds: Option<f64>,
    pub(super) threads: Option<u64>,
    pub(super) virtual_bytes: Option<u64>,
    pub(super) resident_bytes: Option<u64>,
    pub(super) open_fds: Option<u64>,
}

/// The fields of `/proc/self/stat` after the command name (the first is the state,
/// field 3 of proc(5)).
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().collect())
}

/// A `Key:   123 kB` line of `/proc/self/status`, in bytes.
fn status_kb(status: &str, key: &str) -> Option<u64> {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?;
    let kb: u64 = line.split_whitespace().next()?.parse().ok()?;
    Some(kb * 1024)
}

impl Process {
    /// Parses the contents of `/proc/self/stat`, `/proc/self/status` and `/proc/stat`.
    pub(super) fn parse(stat: &str, status: &str, system: &str) -> Process {
        let mut p = Process::default();
        if let Some(f) = stat_fields(stat) {
            // proc(5) numbers fields from 1 and the state is field 3: index = n - 3.
            let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
            if let (Some(utime), Some(stime)) = (field(14), field(15)) {
                p.cpu_seconds = Some((utime + stime) as f64 / CLOCK_TICKS);
            }
            p.threads = field(20);
            let boot = system
                .lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<u64>().ok());
            if let (Some(boot), Some(start)) = (boot, field(22)) {
                p.start_time_seconds = Some(boot as f64 + start as f64 / CLOCK_TICKS);
            }
            p.virtual_bytes = field(23);
        }
        // Resident size in kB from status: no page size to assume.
        p.resident_bytes = status_kb(status, "VmRSS");
        p.virtual_bytes = p.virtual_bytes.or_else(|| status_kb(status, "VmSize"));
        p
    }

    pub(super) fn read() -> Option<Process> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let system = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let mut p = Process::parse(&stat, &status, &system);
        p.open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as u64);
        Some(p)
    }

    /// Registers what could be read, as Prometheus's own clients name it.
    pub(super) fn register(&self, r: &mut Registry) {
        if let Some(v) = self.cpu_seconds {
            r.register(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                ConstCounter::new(v),
            );
        }
        let mut gauge = |name: &str, help: &str, v: Option<u64>| {
            if let Some(v) = v {
                r.register(
                    name,
                    help,
                    ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX)),
                );
            }
        };
        gauge(
            "process_open_fds",
            "Number of open file descriptors",
            self.open_fds,
        );
        gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes",
            self.virtual_bytes,
        );
        gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            self.resident_bytes,
        );
        gauge(
            "process_threads",
            "Number of OS threads in the process",
            self.threads,
        );
        if let Some(v) = self.start_time_seconds {
            r.register(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                ConstGauge::new(v),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_parsed() {
        // A command name with spaces and a parenthesis, as proc(5) allows.
        let stat = "4242 (cell placer) x) S 1 4242 4242 0 -1 4194560 1200 0 0 0 \
                    250 50 0 0 20 0 9 0 12345 104857600 2560 18446744073709551615";
        let status = "Name:\tcellplacer\nVmSize:\t  102400 kB\nVmRSS:\t   10240 kB\n";
        let system = "cpu  1 2 3\nbtime 1700000000\nprocesses 9\n";
        let p = Process::parse(stat, status, system);
        assert_eq!(p.cpu_seconds, Some(3.0));
        assert_eq!(p.threads, Some(9));
        assert!((p.start_time_seconds.unwrap() - 1_700_000_123.45).abs() < 1e-6);
        assert_eq!(p.virtual_bytes, Some(104_857_600));
        assert_eq!(p.resident_bytes, Some(10_485_760));
        assert_eq!(Process::parse("garbage", "", ""), Process::default());
    }

    #[test]
    fn this_process_is_read() {
        let p = Process::read().expect("/proc/self on Linux");
        assert!(p.resident_bytes.unwrap() > 0);
        assert!(p.virtual_bytes.unwrap() >= p.resident_bytes.unwrap());
        assert!(p.threads.unwrap() >= 1);
        assert!(p.open_fds.unwrap() >= 3);
        assert!(p.start_time_seconds.unwrap() > 1.5e9);
    }
}
