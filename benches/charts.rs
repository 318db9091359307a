//! How long a chart takes to draw: the live training chart (SVG, redrawn as
//! a run goes) for runs of growing length, and each kind of chart as PNG.
//! The live chart's budget is 20 ms a redraw, so that it can update a few
//! times a second; the table prints each time as a share of that budget.
//!
//!   cargo bench --bench charts -- [--repeats N]

use std::time::Instant;

use tunebook::plot;
use tunebook::task::Task;
use tunebook::train::{EpochRecord, EvalResult, StepRecord, TrainRun};

/// A run of `steps` optimizer steps over `epochs` epochs with a noisy falling loss.
fn synthetic_run(steps: usize, epochs: usize) -> TrainRun {
    let per_epoch = steps / epochs;
    TrainRun {
        steps: (1..=steps).map(|s| StepRecord { step: s, loss: 0.7 / (s as f64).sqrt() + 0.05 * ((s * 7919) % 13) as f64 / 13.0, lr: 2e-5, grad_norm: None }).collect(),
        epochs: (1..=epochs)
            .map(|e| EpochRecord {
                epoch: e,
                train_loss: 0.5,
                val: Some(EvalResult { loss: 0.5 / e as f64, accuracy: Some(0.7 + 0.02 * e as f64), f1: Some(0.7), rows: 1000, task: Task::Classify, mse: None, mae: None, r2: None }),
                elapsed: (e * per_epoch) as f64,
            })
            .collect(),
        ..Default::default()
    }
}

/// The median seconds of `repeats` calls of `f`.
fn median_seconds(repeats: usize, mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..repeats)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let repeats = args.iter().position(|a| a == "--repeats").and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(21);
    const BUDGET: f64 = 0.020;
    println!("live training chart (SVG), median of {repeats}; budget 20 ms a redraw");
    println!("{:>8}  {:>10}  {:>10}  {:>10}", "steps", "ms", "of budget", "SVG KB");
    for steps in [100, 1_000, 10_000, 100_000] {
        let run = synthetic_run(steps, 4);
        let mut size = 0;
        let t = median_seconds(repeats, || size = plot::training_curves(&run).svg().expect("drawn").len());
        println!("{steps:>8}  {:>10.2}  {:>9.0}%  {:>10.0}", t * 1e3, 100.0 * t / BUDGET, size as f64 / 1e3);
    }
    let run = synthetic_run(1_000, 4);
    let labels: Vec<String> = (0..10).map(|i| format!("class {i}")).collect();
    let counts: Vec<Vec<i64>> = (0..10).map(|i| (0..10).map(|j| if i == j { 90 } else { 1 }).collect()).collect();
    let charts = [
        ("training curves", plot::training_curves(&run)),
        ("lr schedule", plot::lr_schedule(&run)),
        ("confusion 10x10", plot::confusion_matrix(&labels, &counts)?),
        ("class balance", plot::class_balance("bench", &labels, &[100; 10])),
        ("token lengths", plot::token_lengths("bench", &(0..10_000).map(|i| 5 + i % 120).collect::<Vec<_>>(), 64)),
    ];
    println!("\nPNG, median of {repeats}");
    println!("{:>16}  {:>10}  {:>10}", "chart", "ms", "PNG KB");
    for (name, chart) in charts {
        let mut size = 0;
        let t = median_seconds(repeats, || size = chart.png().expect("drawn").len());
        println!("{name:>16}  {:>10.2}  {:>10.0}", t * 1e3, size as f64 / 1e3);
    }
    Ok(())
}
