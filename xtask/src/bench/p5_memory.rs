//! P5: the resident memory of the component and keydir, sampled while the other measurements load them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::report::{Row, Section};
use super::stats::Aim;

/// Samples (seconds since start, component MiB, keydir MiB), taken every 100 ms until dropped.
pub(crate) struct Sampler {
    samples: Arc<Mutex<Vec<(f64, f64, f64)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sampler {
    pub(crate) fn start(component: Option<u32>, keydir: Option<u32>) -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let shared = samples.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mib = |pid: Option<u32>| pid.and_then(crate::soak::rss_kib).map_or(0.0, |kib| kib as f64 / 1024.0);
            loop {
                let sample = (started.elapsed().as_secs_f64(), mib(component), mib(keydir));
                shared.lock().unwrap_or_else(|p| p.into_inner()).push(sample);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Self { samples, task }
    }

    pub(crate) fn samples(&self) -> Vec<(f64, f64, f64)> {
        self.samples.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The most of each column.
pub(crate) fn peaks(samples: &[(f64, f64, f64)]) -> (f64, f64) {
    samples.iter().fold((0.0f64, 0.0f64), |(c, k), s| (c.max(s.1), k.max(s.2)))
}

/// The P5 section from the samples taken during `during`.
pub(crate) fn section(samples: &[(f64, f64, f64)], during: &str, plots: Vec<String>) -> Section {
    let (component, keydir) = peaks(samples);
    let rows = vec![
        Row {
            what: "component peak RSS".into(),
            unit: "MiB",
            keyward: Some(component),
            anchor: None,
            aim: Aim::AtMost(32.0),
        },
        Row {
            what: "keydir peak RSS".into(),
            unit: "MiB",
            keyward: Some(keydir),
            anchor: None,
            aim: Aim::AtMost(64.0),
        },
    ];
    Section {
        id: "P5",
        title: "resident memory under load",
        method: format!(
            "`VmRSS` of the keyward-component and keyward-keydir processes, \
             sampled every 100 ms {during}; the peak of {} samples. The aims are absolute.",
            samples.len()
        ),
        rows,
        detail: String::new(),
        plots,
        not_measured: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peaks_per_process() {
        assert_eq!(peaks(&[(0.0, 10.0, 30.0), (0.1, 12.0, 25.0)]), (12.0, 30.0));
        assert_eq!(peaks(&[]), (0.0, 0.0));
        let section = section(&[(0.0, 40.0, 20.0)], "during P1", Vec::new());
        assert_eq!(section.verdicts(), (1, 1));
    }
}
