//! Progress of long work (streaming, hashing, compressing): a bar on a terminal, a plain line
//! every few seconds otherwise (and always in Nix builders, whose stderr is a pseudo-terminal
//! feeding the build log), and a summary line at the end. Always on
//! stderr, never on stdout, which carries the image.
//!
//! `STRATA_PROGRESS=bar|log|none` overrides the choice.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Time between two plain progress lines.
const LOG_INTERVAL: Duration = Duration::from_secs(5);

/// Counts bytes and layers of one piece of work and reports them.
#[derive(Debug)]
pub struct Progress {
    label: String,
    total: Option<u64>,
    layers: usize,
    done: AtomicU64,
    layers_done: AtomicUsize,
    start: Instant,
    mode: Mode,
}

#[derive(Debug)]
enum Mode {
    Quiet,
    Bar(indicatif::ProgressBar),
    Log(Mutex<Instant>),
}

impl Progress {
    /// Reports nothing.
    pub fn quiet() -> Progress {
        Progress::with_mode(String::new(), None, 0, Mode::Quiet)
    }

    /// Starts reporting work called `label` over `layers` layers of `total` bytes (when
    /// known), as a bar on a terminal and as log lines otherwise.
    pub fn start(label: &str, total: Option<u64>, layers: usize) -> Progress {
        let choice = std::env::var("STRATA_PROGRESS").unwrap_or_default();
        let mode = match choice.as_str() {
            "none" => Mode::Quiet,
            "log" => Mode::Log(Mutex::new(Instant::now())),
            "bar" => bar(total),
            _ if std::io::stderr().is_terminal() && !in_nix_builder() => bar(total),
            _ => Mode::Log(Mutex::new(Instant::now())),
        };
        if let Mode::Bar(b) = &mode {
            b.set_prefix(format!("strata: {label}"));
            b.set_message(format!("layer 0/{layers}"));
        }
        Progress::with_mode(label.to_owned(), total, layers, mode)
    }

    fn with_mode(label: String, total: Option<u64>, layers: usize, mode: Mode) -> Progress {
        Progress {
            label,
            total,
            layers,
            done: AtomicU64::new(0),
            layers_done: AtomicUsize::new(0),
            start: Instant::now(),
            mode,
        }
    }

    /// Records `bytes` more bytes done.
    pub fn add(&self, bytes: u64) {
        let done = self.done.fetch_add(bytes, Ordering::Relaxed) + bytes;
        match &self.mode {
            Mode::Quiet => {}
            Mode::Bar(b) => b.set_position(done),
            Mode::Log(next) => {
                let mut next = next.lock().unwrap_or_else(|e| e.into_inner());
                if next.elapsed() >= LOG_INTERVAL {
                    *next = Instant::now();
                    eprintln!("strata: {}: {}", self.label, self.status(done));
                }
            }
        }
    }

    /// Records one more layer done.
    pub fn layer_done(&self) {
        let n = self.layers_done.fetch_add(1, Ordering::Relaxed) + 1;
        if let Mode::Bar(b) = &self.mode {
            b.set_message(format!("layer {n}/{}", self.layers));
        }
    }

    /// Bytes done so far.
    pub fn bytes(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Ends the report with a summary line (none when quiet).
    pub fn finish(&self) {
        let line = format!(
            "strata: {}: {} ({} bytes) in {} layers, {:.1} s ({}/s)",
            self.label,
            human(self.bytes()),
            self.bytes(),
            self.layers_done.load(Ordering::Relaxed),
            self.start.elapsed().as_secs_f64(),
            human(self.rate()),
        );
        match &self.mode {
            Mode::Quiet => {}
            Mode::Bar(b) => {
                b.finish_and_clear();
                // Carriage return and erase the line: nothing of the bar may stay behind.
                eprintln!("\r\x1b[2K{line}");
            }
            Mode::Log(_) => eprintln!("{line}"),
        }
    }

    fn rate(&self) -> u64 {
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        (self.bytes() as f64 / secs) as u64
    }

    fn status(&self, done: u64) -> String {
        let share = match self.total {
            Some(t) if t > 0 => format!("{}% ", done * 100 / t),
            _ => String::new(),
        };
        let of = self
            .total
            .map(|t| format!(" of {}", human(t)))
            .unwrap_or_default();
        format!(
            "{share}({}{of}, {}/s), layer {}/{}",
            human(done),
            human(self.rate()),
            self.layers_done.load(Ordering::Relaxed),
            self.layers
        )
    }
}

/// Whether this runs as a Nix builder. Nix gives builders a pseudo-terminal for stderr, so a
/// bar's redraws (carriage returns) would land in the build log as tails of earlier lines.
fn in_nix_builder() -> bool {
    std::env::var_os("NIX_BUILD_TOP").is_some() && !std::io::stdin().is_terminal()
}

fn bar(total: Option<u64>) -> Mode {
    let b =
        indicatif::ProgressBar::with_draw_target(total, indicatif::ProgressDrawTarget::stderr());
    let style = indicatif::ProgressStyle::with_template(
        "{prefix} [{bar:30}] {decimal_bytes}/{decimal_total_bytes} {decimal_bytes_per_sec} {msg}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    b.set_style(style.progress_chars("=> "));
    Mode::Bar(b)
}

/// Bytes in decimal units, as throughput figures are usually given.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_formats() {
        let p = Progress::quiet();
        p.add(1500);
        p.add(500);
        p.layer_done();
        assert_eq!(p.bytes(), 2000);
        assert_eq!(human(999), "999 B");
        assert_eq!(human(1_281_000_000), "1.28 GB");
        let log = Progress::with_mode("x".into(), Some(4000), 2, Mode::Quiet);
        assert_eq!(log.status(1000).split(' ').next(), Some("25%"));
    }
}
